#pragma once
#include <napi.h>

namespace switchyard {
void InitPoller(Napi::Env env, Napi::Object exports);
}
