#include "addon.h"
#include "errors.h"

void InitSharedMemory(Napi::Env env, Napi::Object exports) {
  (void)env;
  (void)exports;
}
