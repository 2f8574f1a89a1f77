#pragma once
#include <napi.h>

namespace switchyard {
void InitTcpIo(Napi::Env env, Napi::Object exports);
}
