#pragma once
#include <napi.h>

namespace switchyard {
void InitTapDevice(Napi::Env env, Napi::Object exports);
}
