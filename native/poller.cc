// FdPoller: the event loop watches a descriptor (a message queue or a socket
// on Linux) and calls back on readiness, so an async wait costs no thread.
// Which events to watch, and what to do on readiness, is lib/'s business.
#include "addon.h"
#include "errors.h"
#include <uv.h>

namespace {

class FdPoller;

// Owned by libuv from uv_close until OnClosed: it may outlive its FdPoller.
struct PollHandle {
  uv_poll_t poll;
  FdPoller* owner;
  napi_async_cleanup_hook_handle cleanup_hook;
};

class FdPoller : public Napi::ObjectWrap<FdPoller> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FdPoller", {
      InstanceMethod<&FdPoller::Start>("start"),
      InstanceMethod<&FdPoller::Stop>("stop"),
      InstanceMethod<&FdPoller::Close>("close"),
    });
  }

  // new FdPoller(fd, callback(status, events)): status is 0 or a negative errno.
  explicit FdPoller(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FdPoller>(info) {
    int fd = static_cast<int>(IntegerArg(info, 0, "fd"));
    if (!info[1].IsFunction()) throw Napi::TypeError::New(info.Env(), "argument 1 (callback) must be a function");
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
    context_ = std::make_unique<Napi::AsyncContext>(info.Env(), "pmp:FdPoller", info.This().As<Napi::Object>());
    uv_loop_t* loop = nullptr;
    NAPI_THROW_IF_FAILED_VOID(info.Env(), napi_get_uv_event_loop(info.Env(), &loop));
    auto* handle = new PollHandle{{}, this, nullptr};
    int rc = uv_poll_init(loop, &handle->poll, fd);
    if (rc != 0) {
      delete handle;
      throw ErrnoError(info.Env(), -rc, "uv_poll_init");
    }
    handle->poll.data = handle;
    handle_ = handle;
    napi_add_async_cleanup_hook(info.Env(), OnEnvCleanup, handle, &handle->cleanup_hook);
  }

  ~FdPoller() override { CloseHandle(); }

 private:
  // start(events): 1 = readable, 2 = writable, 3 = both. Replaces the previous mask.
  Napi::Value Start(const Napi::CallbackInfo& info) {
    int64_t events = IntegerArg(info, 0, "events");
    if (events < 1 || events > 3) throw Napi::RangeError::New(info.Env(), "events must be 1 (readable), 2 (writable) or 3");
    if (handle_ == nullptr) throw Napi::Error::New(info.Env(), "FdPoller is closed");
    int mask = ((events & 1) ? UV_READABLE : 0) | ((events & 2) ? UV_WRITABLE : 0);
    int rc = uv_poll_start(&handle_->poll, mask, OnPoll);
    if (rc != 0) throw ErrnoError(info.Env(), -rc, "uv_poll_start");
    if (!active_) {
      active_ = true;
      Ref();  // a watched descriptor keeps its callback alive
    }
    return info.Env().Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    StopWatching();
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    CloseHandle();
    return info.Env().Undefined();
  }

  void StopWatching() {
    if (handle_ != nullptr) uv_poll_stop(&handle_->poll);
    if (active_) {
      active_ = false;
      Unref();
    }
  }

  void CloseHandle() {
    StopWatching();
    if (handle_ == nullptr) return;
    handle_->owner = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(&handle_->poll), OnClosed);
    handle_ = nullptr;
  }

  static void OnPoll(uv_poll_t* poll, int status, int events) {
    FdPoller* self = static_cast<PollHandle*>(poll->data)->owner;
    if (self == nullptr) return;
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    int mask = ((events & UV_READABLE) ? 1 : 0) | ((events & UV_WRITABLE) ? 2 : 0);
    try {
      self->callback_.MakeCallback(self->Value(), {Napi::Number::New(env, status), Napi::Number::New(env, mask)},
                                   *self->context_);
    } catch (const Napi::Error& error) {
      napi_fatal_exception(env, error.Value());
    }
  }

  static void OnClosed(uv_handle_t* poll) {
    auto* handle = static_cast<PollHandle*>(poll->data);
    if (handle->cleanup_hook != nullptr) napi_remove_async_cleanup_hook(handle->cleanup_hook);
    delete handle;
  }

  // A Worker being terminated: close the handle so its loop can end.
  static void OnEnvCleanup(napi_async_cleanup_hook_handle, void* data) {
    auto* handle = static_cast<PollHandle*>(data);
    if (handle->owner != nullptr) {
      handle->owner->handle_ = nullptr;
      handle->owner->active_ = false;
      handle->owner = nullptr;
    }
    uv_poll_stop(&handle->poll);
    if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&handle->poll)))
      uv_close(reinterpret_cast<uv_handle_t*>(&handle->poll), OnClosed);
  }

  PollHandle* handle_ = nullptr;
  bool active_ = false;
  Napi::FunctionReference callback_;
  std::unique_ptr<Napi::AsyncContext> context_;
};

}  // namespace

void InitPoller(Napi::Env env, Napi::Object exports) {
  exports.Set("FdPoller", FdPoller::Define(env));
}
