// Errors cross into JS as Error objects carrying `code` (errno name), `errno` and `syscall`,
// the shape Node's own fs/net errors have, so JS can branch on err.code.
#pragma once
#include <napi.h>

namespace switchyard {

Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall, const char* subject = nullptr);
Napi::Value ThrowErrno(Napi::Env env, int err, const char* syscall, const char* subject = nullptr);

}  // namespace switchyard
