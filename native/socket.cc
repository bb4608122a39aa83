#include "addon.h"
#include "errors.h"

void InitSocket(Napi::Env env, Napi::Object exports) {
  (void)env;
  (void)exports;
}
