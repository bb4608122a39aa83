#pragma once
#include <napi.h>
#include <string>

// An Error for a failed system call: code ('ENOENT'), errno, syscall and the
// object's name as path. lib/ turns these into messages that teach.
Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall, const std::string& name = "");

// Argument checks shared by every file: a TypeError instead of a crash.
std::string StringArg(const Napi::CallbackInfo& info, size_t i, const char* what);
int64_t IntegerArg(const Napi::CallbackInfo& info, size_t i, const char* what);
double NumberArg(const Napi::CallbackInfo& info, size_t i, const char* what);
// A Buffer, TypedArray, DataView or ArrayBuffer: its bytes, without copying.
struct Bytes { uint8_t* data; size_t length; };
Bytes BytesArg(const Napi::CallbackInfo& info, size_t i, const char* what);
