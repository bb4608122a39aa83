#include "addon.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  InitPoller(env, exports);
  InitMessageQueue(env, exports);
  InitSemaphore(env, exports);
  InitSharedMemory(env, exports);
  InitSocket(env, exports);
  InitProcess(env, exports);
  InitFeeder(env, exports);
  return exports;
}

NODE_API_MODULE(pmp, Init)
