#pragma once
#include <napi.h>

namespace switchyard {
void InitIcmpSocket(Napi::Env env, Napi::Object exports);
}
