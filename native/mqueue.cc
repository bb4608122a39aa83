#include "addon.h"
#include "errors.h"

void InitMessageQueue(Napi::Env env, Napi::Object exports) {
  (void)env;
  (void)exports;
}
