#include "errors.h"
#include <cmath>
#include <cstring>
#include <uv.h>

Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall, const std::string& name) {
  std::string message = std::string(uv_err_name(-err)) + ": " + std::strerror(err) + ", " + syscall;
  if (!name.empty()) message += " '" + name + "'";
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", uv_err_name(-err));
  error.Set("errno", Napi::Number::New(env, err));
  error.Set("syscall", syscall);
  if (!name.empty()) error.Set("path", name);
  return error;
}

static Napi::TypeError ArgError(const Napi::CallbackInfo& info, size_t i, const char* what, const char* kind) {
  return Napi::TypeError::New(info.Env(), std::string("argument ") + std::to_string(i) + " (" + what + ") must be " + kind);
}

std::string StringArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsString()) throw ArgError(info, i, what, "a string");
  return info[i].As<Napi::String>().Utf8Value();
}

double NumberArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsNumber()) throw ArgError(info, i, what, "a number");
  return info[i].As<Napi::Number>().DoubleValue();
}

int64_t IntegerArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  double value = NumberArg(info, i, what);
  if (!std::isfinite(value) || std::trunc(value) != value || std::fabs(value) > 9007199254740991.0)
    throw ArgError(info, i, what, "an integer");
  return static_cast<int64_t>(value);
}

static size_t ElementSize(napi_typedarray_type type) {
  switch (type) {
    case napi_int16_array: case napi_uint16_array: return 2;
    case napi_int32_array: case napi_uint32_array: case napi_float32_array: return 4;
    case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: return 8;
    default: return 1;
  }
}

Bytes BytesArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  Napi::Value value = info[i];
  if (value.IsTypedArray()) {
    // One call for the common case (a Buffer on every send and receive): the pointer comes offset already.
    napi_typedarray_type type;
    size_t length;
    void* data;
    if (napi_get_typedarray_info(info.Env(), value, &type, &length, &data, nullptr, nullptr) != napi_ok) {
      throw Napi::Error::New(info.Env());
    }
    return {static_cast<uint8_t*>(data), length * ElementSize(type)};
  }
  if (value.IsDataView()) {
    Napi::DataView view = value.As<Napi::DataView>();
    uint8_t* base = static_cast<uint8_t*>(view.ArrayBuffer().Data());
    return {base ? base + view.ByteOffset() : nullptr, view.ByteLength()};
  }
  if (value.IsArrayBuffer()) {
    Napi::ArrayBuffer buffer = value.As<Napi::ArrayBuffer>();
    return {static_cast<uint8_t*>(buffer.Data()), buffer.ByteLength()};
  }
  throw ArgError(info, i, what, "a Buffer, TypedArray, DataView or ArrayBuffer");
}
