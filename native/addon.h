// Each kernel object lives in its own file and adds its functions to the
// module's exports here. No policy in native/: errors go up as errno codes.
#pragma once
#include <napi.h>

void InitPoller(Napi::Env env, Napi::Object exports);
void InitMessageQueue(Napi::Env env, Napi::Object exports);
void InitSemaphore(Napi::Env env, Napi::Object exports);
void InitSharedMemory(Napi::Env env, Napi::Object exports);
void InitSocket(Napi::Env env, Napi::Object exports);
void InitFeeder(Napi::Env env, Napi::Object exports);
void InitProcess(Napi::Env env, Napi::Object exports);
