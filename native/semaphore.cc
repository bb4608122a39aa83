#include "addon.h"
#include "errors.h"

void InitSemaphore(Napi::Env env, Napi::Object exports) {
  (void)env;
  (void)exports;
}
