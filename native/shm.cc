// Shared memory: shm_open/shm_unlink, and mmap/munmap of a descriptor as a
// Buffer over the mapping. lib/posix/shm.ts decides sizes and names.
//
// A mapping is unmapped exactly once: by munmap(buffer) (which first detaches
// the Buffer's ArrayBuffer, so JavaScript sees a zero-length buffer instead of
// freed memory), by the Buffer's finalizer when it is collected, or when the
// environment (a Worker) is torn down.
#include "addon.h"
#include "errors.h"
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cerrno>
#include <unordered_map>

namespace {

struct Registry;

struct Mapping {
  void* addr;          // nullptr once unmapped
  size_t length;
  Registry* registry;  // nullptr once the environment is gone
};

// The live mappings of one environment, by address.
struct Registry {
  std::unordered_map<void*, Mapping*> live;
};

void Unmap(Mapping* mapping) {
  if (mapping->addr == nullptr) return;
  if (mapping->registry != nullptr) mapping->registry->live.erase(mapping->addr);
  munmap(mapping->addr, mapping->length);
  mapping->addr = nullptr;
}

// The Buffer was collected (or detached and released): the mapping goes with it.
void FinalizeMapping(Napi::Env, uint8_t*, Mapping* mapping) {
  Unmap(mapping);
  delete mapping;
}

// The environment is going away (a Worker terminated): no JavaScript runs any
// more, so every mapping can go; the finalizers that may still run find them
// unmapped and only free their records.
void OnEnvCleanup(void* data) {
  auto* registry = static_cast<Registry*>(data);
  for (auto& entry : registry->live) {
    munmap(entry.second->addr, entry.second->length);
    entry.second->addr = nullptr;
    entry.second->registry = nullptr;
  }
  delete registry;
}

Registry* RegistryOf(const Napi::CallbackInfo& info) {
  return static_cast<Registry*>(info.Data());
}

// shmOpen(name, oflag, mode): a descriptor, O_RDWR added by the caller's oflag.
Napi::Value ShmOpen(const Napi::CallbackInfo& info) {
  std::string name = StringArg(info, 0, "name");
  int oflag = static_cast<int>(IntegerArg(info, 1, "oflag"));
  mode_t mode = static_cast<mode_t>(IntegerArg(info, 2, "mode"));
  int fd = shm_open(name.c_str(), oflag | O_CLOEXEC, mode);
  if (fd == -1) throw ErrnoError(info.Env(), errno, "shm_open", name);
  return Napi::Number::New(info.Env(), fd);
}

// shmUnlink(name)
Napi::Value ShmUnlink(const Napi::CallbackInfo& info) {
  std::string name = StringArg(info, 0, "name");
  if (shm_unlink(name.c_str()) == -1) throw ErrnoError(info.Env(), errno, "shm_unlink", name);
  return info.Env().Undefined();
}

// fallocate(fd, length): reserves the pages now, so a full /dev/shm fails
// here with ENOSPC instead of killing the process with SIGBUS on first write.
Napi::Value Fallocate(const Napi::CallbackInfo& info) {
  int fd = static_cast<int>(IntegerArg(info, 0, "fd"));
  int64_t length = IntegerArg(info, 1, "length");
  if (length < 0) throw Napi::RangeError::New(info.Env(), "length must not be negative");
  if (length == 0) return info.Env().Undefined();
  int err;
  do err = posix_fallocate(fd, 0, static_cast<off_t>(length)); while (err == EINTR);
  if (err != 0) throw ErrnoError(info.Env(), err, "posix_fallocate");
  return info.Env().Undefined();
}

// mmap(fd, length): a Buffer over a shared read-write mapping of the first
// `length` bytes. Length 0 maps nothing and gives an empty Buffer.
Napi::Value Mmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = static_cast<int>(IntegerArg(info, 0, "fd"));
  int64_t length = IntegerArg(info, 1, "length");
  if (length < 0) throw Napi::RangeError::New(env, "length must not be negative");
  if (length == 0) return Napi::Buffer<uint8_t>::New(env, 0);
  void* addr = mmap(nullptr, static_cast<size_t>(length), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (addr == MAP_FAILED) throw ErrnoError(env, errno, "mmap");
  auto* mapping = new Mapping{addr, static_cast<size_t>(length), RegistryOf(info)};
  mapping->registry->live.emplace(addr, mapping);
  try {
    return Napi::Buffer<uint8_t>::New(env, static_cast<uint8_t*>(addr), mapping->length, FinalizeMapping, mapping);
  } catch (...) {
    Unmap(mapping);
    delete mapping;
    throw;
  }
}

// munmap(buffer): detaches the buffer's ArrayBuffer (every view of it becomes
// zero-length), then unmaps. Idempotent; a buffer that maps nothing is a no-op.
Napi::Value Munmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() && !info[0].IsArrayBuffer())
    throw Napi::TypeError::New(env, "argument 0 (buffer) must be a Buffer returned by mmap");
  Napi::ArrayBuffer buffer = info[0].IsArrayBuffer() ? info[0].As<Napi::ArrayBuffer>()
                                                     : info[0].As<Napi::TypedArray>().ArrayBuffer();
  if (buffer.ByteLength() == 0) return env.Undefined();
  Registry* registry = RegistryOf(info);
  auto found = registry->live.find(buffer.Data());
  if (found == registry->live.end() || found->second->length != buffer.ByteLength())
    throw Napi::TypeError::New(env, "argument 0 (buffer) is not a mapping made by mmap");
  Mapping* mapping = found->second;
  NAPI_THROW_IF_FAILED(env, napi_detach_arraybuffer(env, buffer), env.Undefined());
  Unmap(mapping);
  return env.Undefined();
}

}  // namespace

void InitSharedMemory(Napi::Env env, Napi::Object exports) {
  auto* registry = new Registry();
  napi_add_env_cleanup_hook(env, OnEnvCleanup, registry);
  exports.Set("shmOpen", Napi::Function::New(env, ShmOpen, "shmOpen"));
  exports.Set("shmUnlink", Napi::Function::New(env, ShmUnlink, "shmUnlink"));
  exports.Set("fallocate", Napi::Function::New(env, Fallocate, "fallocate"));
  exports.Set("mmap", Napi::Function::New(env, Mmap, "mmap", registry));
  exports.Set("munmap", Napi::Function::New(env, Munmap, "munmap", registry));
  Napi::Object flags = Napi::Object::New(env);
  flags.Set("O_RDWR", O_RDWR);
  flags.Set("O_CREAT", O_CREAT);
  flags.Set("O_EXCL", O_EXCL);
  exports.Set("shmFlags", flags);
}
