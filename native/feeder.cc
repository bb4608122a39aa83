// The queue feeder, as CPython's feeder thread: a thread that moves the
// messages a process put into its kernel queue, so put() never blocks and
// messages keep flowing while the JavaScript thread is busy or blocked in a
// synchronous call. While messages wait here the feeder keeps the event loop
// alive (unless told not to), so a process ends only after they reached the
// kernel. It may pack several consecutive small messages into one batch
// frame (docs/wire-format.md), and hold messages back briefly for others to
// join them; what to batch and hold is lib/'s choice.
#include "addon.h"
#include "errors.h"
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <deque>
#include <fcntl.h>
#include <memory>
#include <mqueue.h>
#include <mutex>
#include <thread>
#include <vector>

namespace {

constexpr uint8_t kBatchFrame = 0x01;
constexpr size_t kBatchHeader = 5;  // frame byte, uint32 count
constexpr size_t kBatchEntryHeader = 4;  // uint32 length

struct Message {
  std::vector<uint8_t> bytes;
  bool batchable;
};

// Shared by the JS object, the thread and the calls in flight to JS.
struct State {
  mqd_t fd = -1;
  size_t maxMessageSize = 0;
  size_t maxBatch = 1;
  std::mutex mutex;
  std::condition_variable changed;   // messages added, or told to stop
  std::condition_variable drained;   // messages reached the kernel, or the thread ended
  std::deque<Message> messages;      // the front one is being sent
  size_t held = 0;                   // messages at the back held for more to share their kernel message
  bool closing = false;              // send what is left, then end
  bool dropping = false;             // end now, dropping what is left
  bool finished = false;
  int error = 0;                     // the first errno a send failed with
  // JS thread only:
  Napi::ThreadSafeFunction idle;     // tells JS the buffer is empty or the thread ended
  bool tsfnAlive = true;
  bool keepAlive = true;
  bool referenced = false;
  std::thread thread;
  bool cleanedUp = false;
};

void PutUint32(uint8_t* at, uint32_t value) {
  std::memcpy(at, &value, 4);  // little-endian on every platform this runs on
}

// How long one blocking send waits before the thread looks whether it was
// told to drop what is left: the longest drop() (and so an exit that drops)
// waits for the thread, unless the wall clock is set back meanwhile (the
// kernel's deadline is CLOCK_REALTIME).
constexpr long kSendSliceNanoseconds = 20 * 1000 * 1000;
// The longest a held message waits for the JS thread to release it (push
// without hold, release(), flush(), close()): it still flows while that
// thread is blocked or busy.
constexpr std::chrono::microseconds kHoldLimit(500);
// A deadline long past: a timed send on the blocking descriptor only tries.
const timespec kPast = {0, 0};

// Sends one message, waiting in the kernel while the queue is full (blocked
// there, the message is moved in by the consumer that frees a place, without
// waiting for this thread to run). 0, or an errno; ECANCELED when told to drop.
int SendOne(State& state, const uint8_t* data, size_t length) {
  for (;;) {
    timespec sliceEnd;
    clock_gettime(CLOCK_REALTIME, &sliceEnd);
    sliceEnd.tv_nsec += kSendSliceNanoseconds;
    if (sliceEnd.tv_nsec >= 1000000000L) {
      sliceEnd.tv_sec++;
      sliceEnd.tv_nsec -= 1000000000L;
    }
    if (mq_timedsend(state.fd, reinterpret_cast<const char*>(data), length, 0, &sliceEnd) == 0) return 0;
    if (errno != EINTR && errno != ETIMEDOUT) return errno;
    std::lock_guard<std::mutex> lock(state.mutex);
    if (state.dropping) return ECANCELED;
  }
}

void ReleaseWhenIdle(Napi::Env env, State& state);

// Runs ReleaseWhenIdle and then onIdle() on the JS thread.
void TellJs(const std::shared_ptr<State>& state) {
  auto* data = new std::shared_ptr<State>(state);
  auto call = [](Napi::Env env, Napi::Function onIdle, std::shared_ptr<State>* keep) {
    std::shared_ptr<State> kept = *keep;
    delete keep;
    if (env == nullptr) return;  // the environment is being torn down
    try {
      ReleaseWhenIdle(env, *kept);
      onIdle.Call({});
    } catch (const Napi::Error&) {
      // Only while the environment ends (JS cannot run any more): lib/'s onIdle does not throw.
    }
  };
  if (state->idle.NonBlockingCall(data, call) != napi_ok) delete data;
}

void Run(std::shared_ptr<State> state) {
  std::vector<uint8_t> batch;
  for (;;) {
    size_t count = 1;
    const uint8_t* data;
    size_t length;
    {
      std::unique_lock<std::mutex> lock(state->mutex);
      auto ready = [&] { return state->dropping || state->closing || state->messages.size() > state->held; };
      while (!ready()) {
        if (state->messages.empty()) {
          state->changed.wait(lock);
        } else if (state->changed.wait_for(lock, kHoldLimit) == std::cv_status::timeout && !ready()) {
          state->held = 0;
        }
      }
      if (state->dropping || state->messages.empty()) break;
      // Only this thread removes messages, and a deque keeps references to its
      // elements valid while others are appended: the front can be read unlocked.
      const Message& first = state->messages.front();
      size_t size = kBatchHeader + kBatchEntryHeader + first.bytes.size();
      if (first.batchable && state->maxBatch > 1 && size <= state->maxMessageSize) {
        while (count < state->messages.size() && count < state->maxBatch && state->messages[count].batchable &&
               size + kBatchEntryHeader + state->messages[count].bytes.size() <= state->maxMessageSize) {
          size += kBatchEntryHeader + state->messages[count].bytes.size();
          count++;
        }
      }
      if (count == 1) {
        data = first.bytes.data();
        length = first.bytes.size();
      } else {
        batch.resize(size);
        batch[0] = kBatchFrame;
        PutUint32(&batch[1], static_cast<uint32_t>(count));
        size_t at = kBatchHeader;
        for (size_t i = 0; i < count; i++) {
          const std::vector<uint8_t>& bytes = state->messages[i].bytes;
          PutUint32(&batch[at], static_cast<uint32_t>(bytes.size()));
          if (!bytes.empty()) std::memcpy(&batch[at + kBatchEntryHeader], bytes.data(), bytes.size());
          at += kBatchEntryHeader + bytes.size();
        }
        data = batch.data();
        length = batch.size();
      }
    }
    int error = SendOne(*state, data, length);
    bool empty;
    {
      std::lock_guard<std::mutex> lock(state->mutex);
      if (error == ECANCELED) break;
      if (error != 0 && state->error == 0) state->error = error;
      for (size_t i = 0; i < count; i++) state->messages.pop_front();
      state->held = std::min(state->held, state->messages.size());
      empty = state->messages.empty();
    }
    if (empty) {
      state->drained.notify_all();
      TellJs(state);
    }
  }
  {
    std::lock_guard<std::mutex> lock(state->mutex);
    state->finished = true;
  }
  state->drained.notify_all();
  TellJs(state);
}

// JS thread: the thread ends (after sending what is left, unless dropping) and
// everything is released. Idempotent.
void Finish(State& state, bool drop) {
  {
    std::lock_guard<std::mutex> lock(state.mutex);
    state.closing = true;
    if (drop) state.dropping = true;
  }
  state.changed.notify_all();
  if (state.thread.joinable()) state.thread.join();
  if (state.tsfnAlive) {
    state.tsfnAlive = false;
    state.idle.Release();
  }
  if (state.fd != -1) mq_close(state.fd);
  state.fd = -1;
}

void ReleaseWhenIdle(Napi::Env env, State& state) {
  bool empty, finished;
  {
    std::lock_guard<std::mutex> lock(state.mutex);
    empty = state.messages.empty();
    finished = state.finished;
  }
  if ((empty || finished) && state.referenced && state.tsfnAlive) {
    state.idle.Unref(env);
    state.referenced = false;
  }
  if (finished) Finish(state, false);
}

class Feeder : public Napi::ObjectWrap<Feeder> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Feeder", {
      InstanceMethod<&Feeder::Push>("push"),
      InstanceMethod<&Feeder::Release>("release"),
      InstanceAccessor<&Feeder::Pending>("pending"),
      InstanceAccessor<&Feeder::Error>("error"),
      InstanceMethod<&Feeder::Flush>("flush"),
      InstanceMethod<&Feeder::Close>("close"),
      InstanceMethod<&Feeder::Drop>("drop"),
      InstanceMethod<&Feeder::KeepAlive>("keepAlive"),
    });
  }

  // new Feeder(name, maxBatch, onIdle): opens its own descriptor on the queue.
  // onIdle() is called when the buffer empties and when the thread has ended.
  explicit Feeder(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Feeder>(info), state_(std::make_shared<State>()) {
    Napi::Env env = info.Env();
    std::string name = StringArg(info, 0, "name");
    int64_t maxBatch = IntegerArg(info, 1, "maxBatch");
    if (maxBatch < 1 || maxBatch > 65536) throw Napi::RangeError::New(env, "maxBatch must be between 1 and 65536");
    if (!info[2].IsFunction()) throw Napi::TypeError::New(env, "argument 2 (onIdle) must be a function");
    mqd_t fd = mq_open(name.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd == static_cast<mqd_t>(-1)) throw ErrnoError(env, errno, "mq_open", name);
    mq_attr attr;
    if (mq_getattr(fd, &attr) != 0) {
      int err = errno;
      mq_close(fd);
      throw ErrnoError(env, err, "mq_getattr", name);
    }
    State& state = *state_;
    state.fd = fd;
    state.maxMessageSize = static_cast<size_t>(attr.mq_msgsize);
    state.maxBatch = static_cast<size_t>(maxBatch);
    state.idle = Napi::ThreadSafeFunction::New(env, info[2].As<Napi::Function>(), "pmp:Feeder", 0, 1,
                                               new std::shared_ptr<State>(state_),
                                               [](Napi::Env, std::shared_ptr<State>* keep) {
                                                 (*keep)->tsfnAlive = false;
                                                 delete keep;
                                               });
    state.idle.Unref(env);
    state.thread = std::thread(Run, state_);
    napi_add_env_cleanup_hook(env, OnEnvCleanup, this);
  }

  ~Feeder() override {
    if (!state_->cleanedUp) {
      napi_remove_env_cleanup_hook(Env(), OnEnvCleanup, this);
      Finish(*state_, true);
    }
  }

 private:
  // push(bytes, batchable, hold = false) -> messages waiting, 0 when it went
  // to the kernel at once: with nothing waiting (so the thread is idle and
  // order is kept) it tries one send here (without waiting), saving the
  // thread a wake-up. With hold, the message waits for others to share its
  // kernel message: the thread sends it once maxBatch messages are held, when
  // a message is pushed without hold, at release(), or after kHoldLimit.
  Napi::Value Push(const Napi::CallbackInfo& info) {
    Bytes bytes = BytesArg(info, 0, "bytes");
    if (!info[1].IsBoolean()) throw Napi::TypeError::New(info.Env(), "argument 1 (batchable) must be a boolean");
    bool hold = info.Length() > 2 && info[2].ToBoolean();
    State& state = *state_;
    size_t waiting;
    bool wake = true;
    {
      std::lock_guard<std::mutex> lock(state.mutex);
      if (state.closing) throw ErrnoError(info.Env(), EPIPE, "feeder push");
      bool idle = state.messages.empty();
      if (idle && !hold) {
        const char* data = bytes.data ? reinterpret_cast<const char*>(bytes.data) : "";
        int rc;
        do rc = mq_timedsend(state.fd, data, bytes.length, 0, &kPast); while (rc != 0 && errno == EINTR);
        if (rc == 0) return Napi::Number::New(info.Env(), 0);
        if (errno != ETIMEDOUT) throw ErrnoError(info.Env(), errno, "mq_send");
      }
      state.messages.push_back({std::vector<uint8_t>(bytes.data, bytes.data + bytes.length), info[1].As<Napi::Boolean>()});
      waiting = state.messages.size();
      if (!hold) {
        state.held = 0;
      } else if (++state.held >= state.maxBatch) {
        state.held = 0;
      } else {
        wake = idle;  // the thread starts its kHoldLimit wait; later held messages need not wake it
      }
    }
    if (wake) state.changed.notify_one();
    if (state.keepAlive && !state.referenced && state.tsfnAlive) {
      state.idle.Ref(info.Env());
      state.referenced = true;
    }
    return Napi::Number::New(info.Env(), static_cast<double>(waiting));
  }

  // release(): held messages go now.
  Napi::Value Release(const Napi::CallbackInfo& info) {
    bool wake;
    {
      std::lock_guard<std::mutex> lock(state_->mutex);
      wake = state_->held > 0;
      state_->held = 0;
    }
    if (wake) state_->changed.notify_one();
    return info.Env().Undefined();
  }

  Napi::Value Pending(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> lock(state_->mutex);
    return Napi::Number::New(info.Env(), static_cast<double>(state_->messages.size()));
  }

  // The errno of the first send that failed (its messages were dropped), or 0.
  Napi::Value Error(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> lock(state_->mutex);
    return Napi::Number::New(info.Env(), state_->error);
  }

  // flush(seconds): blocks until every message reached the kernel (true) or
  // the time is up or the thread ended first (false). Infinity: no limit.
  Napi::Value Flush(const Napi::CallbackInfo& info) {
    double seconds = NumberArg(info, 0, "seconds");
    State& state = *state_;
    std::unique_lock<std::mutex> lock(state.mutex);
    if (state.held > 0) {
      state.held = 0;
      state.changed.notify_one();
    }
    auto done = [&] { return state.messages.empty() || state.finished; };
    if (seconds >= 1e9) {
      state.drained.wait(lock, done);
    } else {
      state.drained.wait_for(lock, std::chrono::duration<double>(seconds > 0 ? seconds : 0), done);
    }
    return Napi::Boolean::New(info.Env(), state.messages.empty());
  }

  // close(): no more messages; the thread sends what is left, then ends.
  // With nothing left it ends now, and the descriptor is closed at once (an
  // open descriptor keeps the queue's bytes charged to RLIMIT_MSGQUEUE).
  Napi::Value Close(const Napi::CallbackInfo& info) {
    bool empty;
    {
      std::lock_guard<std::mutex> lock(state_->mutex);
      state_->closing = true;
      empty = state_->messages.empty();
    }
    state_->changed.notify_all();
    if (empty) Finish(*state_, false);
    return info.Env().Undefined();
  }

  // drop(): the thread ends now; messages not yet sent are lost.
  Napi::Value Drop(const Napi::CallbackInfo& info) {
    Finish(*state_, true);
    return info.Env().Undefined();
  }

  // keepAlive(flag): whether waiting messages keep the event loop alive.
  Napi::Value KeepAlive(const Napi::CallbackInfo& info) {
    if (!info[0].IsBoolean()) throw Napi::TypeError::New(info.Env(), "argument 0 (flag) must be a boolean");
    State& state = *state_;
    state.keepAlive = info[0].As<Napi::Boolean>();
    bool waiting;
    {
      std::lock_guard<std::mutex> lock(state.mutex);
      waiting = !state.messages.empty();
    }
    bool wanted = state.keepAlive && waiting;
    if (wanted != state.referenced && state.tsfnAlive) {
      if (wanted) state.idle.Ref(info.Env());
      else state.idle.Unref(info.Env());
      state.referenced = wanted;
    }
    return info.Env().Undefined();
  }

  static void OnEnvCleanup(void* data) {
    auto* self = static_cast<Feeder*>(data);
    self->state_->cleanedUp = true;
    Finish(*self->state_, true);
  }

  std::shared_ptr<State> state_;
};

}  // namespace

void InitFeeder(Napi::Env env, Napi::Object exports) {
  exports.Set("Feeder", Feeder::Define(env));
}
