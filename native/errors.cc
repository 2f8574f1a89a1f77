#include "errors.h"

#include <string.h>

#include <string>

namespace switchyard {

Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall, const char* subject) {
  const char* name = strerrorname_np(err);
  std::string msg = std::string(syscall) + " failed: " + strerror(err);
  if (name) msg = std::string(name) + ": " + msg;
  if (subject) msg += std::string(" (") + subject + ")";
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, name ? name : "UNKNOWN"));
  e.Set("errno", Napi::Number::New(env, -err));
  e.Set("syscall", Napi::String::New(env, syscall));
  if (subject) e.Set("subject", Napi::String::New(env, subject));
  return e;
}

Napi::Value ThrowErrno(Napi::Env env, int err, const char* syscall, const char* subject) {
  ErrnoError(env, err, syscall, subject).ThrowAsJavaScriptException();
  return env.Undefined();
}

}  // namespace switchyard
