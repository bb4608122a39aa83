// Named POSIX semaphores: thin sem_open/sem_trywait/sem_timedwait/sem_post/
// sem_getvalue/sem_close/sem_unlink, plus the one mechanism that must run off
// the JavaScript thread. A semaphore has no descriptor the event loop could
// watch, so async acquires are served by one waiter thread per handle (not
// per call, and never a libuv pool thread): JS asks for tokens (request), the
// thread takes them with sem_timedwait in short slices (so close and env
// teardown stop it promptly) and hands each to JS through a threadsafe
// function. JS gives a token to its oldest waiter or, when nobody wants it any
// more (a waiter timed out or was aborted meanwhile), returns false and the
// token is posted back here. Which waiter gets what is lib/'s business.
#include "addon.h"
#include "errors.h"
#include <cerrno>
#include <climits>
#include <cmath>
#include <condition_variable>
#include <fcntl.h>
#include <linux/futex.h>
#include <memory>
#include <mutex>
#include <semaphore.h>
#include <sys/syscall.h>
#include <thread>
#include <time.h>
#include <unistd.h>

namespace {

// How long a waiter thread sleeps in one sem_timedwait: bounds how late it
// notices close() or env teardown.
constexpr double kSliceSeconds = 0.05;
// The longest one synchronous wait() may block.
constexpr double kMaxWaitSeconds = 0.25;
// An idle waiter thread lingers this long for the next request, then exits.
constexpr auto kLinger = std::chrono::seconds(1);

timespec RealtimeAfter(double seconds) {
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  double whole = std::floor(seconds);
  long nanos = now.tv_nsec + static_cast<long>((seconds - whole) * 1e9);
  time_t secs = now.tv_sec + static_cast<time_t>(whole) + nanos / 1000000000L;
  return {secs, nanos % 1000000000L};
}

// Shared by the JS handle, its waiter thread and every token in flight; the
// last of them closes the semaphore, so a token can always be posted back.
struct Waiting {
  explicit Waiting(sem_t* sem) : sem(sem) {}
  ~Waiting() { sem_close(sem); }
  sem_t* const sem;
  std::mutex mutex;
  std::condition_variable wake;
  int64_t demand = 0;              // tokens JS wants and the thread has not taken yet
  int64_t inFlight = 0;            // deliveries queued to JS
  bool stopping = false;           // closed, or the env is going away
  bool threadRunning = false;
  napi_threadsafe_function tsfn = nullptr;  // null once closing: nothing more may be delivered
  // While JS waits for something, the threadsafe function keeps the loop alive.
  bool Busy() const { return demand > 0 || inFlight > 0; }
};

// One delivery through the threadsafe function: 0 = a token, else -errno.
struct Delivery {
  std::shared_ptr<Waiting> waiting;
  int code;
};

// Called with the mutex held.
void Deliver(const std::shared_ptr<Waiting>& w, int code) {
  auto* delivery = new Delivery{w, code};
  if (w->tsfn != nullptr && napi_call_threadsafe_function(w->tsfn, delivery, napi_tsfn_nonblocking) == napi_ok) {
    w->inFlight++;
    return;
  }
  if (code == 0) sem_post(w->sem);
  delete delivery;
}

void WaitForTokens(std::shared_ptr<Waiting> w) {
  std::unique_lock<std::mutex> lock(w->mutex);
  while (!w->stopping) {
    if (w->demand == 0) {
      if (!w->wake.wait_for(lock, kLinger, [&] { return w->stopping || w->demand > 0; })) break;
      continue;
    }
    lock.unlock();
    timespec deadline = RealtimeAfter(kSliceSeconds);
    int rc = sem_timedwait(w->sem, &deadline);
    int err = rc == 0 ? 0 : errno;
    lock.lock();
    if (rc == 0) {
      if (w->demand > 0 && !w->stopping) {
        w->demand--;
        Deliver(w, 0);
      } else {
        sem_post(w->sem);  // the waiter left while the thread was taking it
      }
    } else if (err != ETIMEDOUT && err != EINTR) {
      w->demand = 0;
      Deliver(w, -err);
    }
  }
  w->threadRunning = false;
}

// On the JS thread: offer the token to JS; a token nobody took goes back.
void CallJs(napi_env env, napi_value callback, void*, void* data) {
  std::unique_ptr<Delivery> delivery(static_cast<Delivery*>(data));
  Waiting& w = *delivery->waiting;
  bool taken = false;
  {
    std::lock_guard<std::mutex> lock(w.mutex);
    w.inFlight--;
  }
  if (env != nullptr && callback != nullptr) {
    napi_value code, result, undefined;
    napi_get_undefined(env, &undefined);
    napi_create_int32(env, delivery->code, &code);
    if (napi_call_function(env, undefined, callback, 1, &code, &result) == napi_ok) {
      napi_get_value_bool(env, result, &taken);
    }
    std::lock_guard<std::mutex> lock(w.mutex);
    if (!w.Busy() && w.tsfn != nullptr) napi_unref_threadsafe_function(env, w.tsfn);
  }
  if (delivery->code == 0 && !taken) sem_post(w.sem);
}

// The env may finalize the threadsafe function first (teardown): from then on
// nothing may be delivered through it.
void TsfnFinalized(napi_env, void* data, void*) {
  auto* keep = static_cast<std::shared_ptr<Waiting>*>(data);
  {
    std::lock_guard<std::mutex> lock((*keep)->mutex);
    (*keep)->tsfn = nullptr;
  }
  delete keep;
}

class Semaphore : public Napi::ObjectWrap<Semaphore> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Semaphore", {
      InstanceMethod<&Semaphore::TryWait>("tryWait"),
      InstanceMethod<&Semaphore::Wait>("wait"),
      InstanceMethod<&Semaphore::Post>("post"),
      InstanceMethod<&Semaphore::GetValue>("getValue"),
      InstanceMethod<&Semaphore::Request>("request"),
      InstanceMethod<&Semaphore::Cancel>("cancel"),
      InstanceMethod<&Semaphore::Words>("words"),
      InstanceMethod<&Semaphore::WakeOne>("wakeOne"),
      InstanceMethod<&Semaphore::Close>("close"),
      StaticMethod<&Semaphore::Unlink>("unlink"),
    });
  }

  // new Semaphore(name, create, exclusive, mode, initialValue)
  explicit Semaphore(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Semaphore>(info) {
    name_ = StringArg(info, 0, "name");
    int flags = 0;
    if (info[1].ToBoolean()) flags |= O_CREAT;
    if (info[2].ToBoolean()) flags |= O_EXCL;
    int64_t mode = IntegerArg(info, 3, "mode");
    int64_t value = IntegerArg(info, 4, "initialValue");
    if (mode < 0 || mode > 07777) throw Napi::RangeError::New(info.Env(), "mode must be between 0 and 0o7777");
    if (value < 0 || value > SEM_VALUE_MAX) throw Napi::RangeError::New(info.Env(), "initialValue must be between 0 and SEM_VALUE_MAX");
    // glibc would take "x" for "/x"; POSIX leaves such names undefined.
    if (name_.empty() || name_[0] != '/') throw ErrnoError(info.Env(), EINVAL, "sem_open", name_);
    sem_t* sem = sem_open(name_.c_str(), flags, static_cast<mode_t>(mode), static_cast<unsigned>(value));
    if (sem == SEM_FAILED) throw ErrnoError(info.Env(), errno, "sem_open", name_);
    waiting_ = std::make_shared<Waiting>(sem);
    env_ = info.Env();
    napi_add_env_cleanup_hook(env_, OnEnvCleanup, this);
  }

  ~Semaphore() override {
    Stop();
    if (env_ != nullptr) napi_remove_env_cleanup_hook(env_, OnEnvCleanup, this);
  }

 private:
  sem_t* Open(const Napi::CallbackInfo& info) {
    if (!waiting_) throw ErrnoError(info.Env(), EBADF, "sem_t", name_);
    return waiting_->sem;
  }

  // tryWait(): true if a token was taken, false at once otherwise.
  Napi::Value TryWait(const Napi::CallbackInfo& info) {
    sem_t* sem = Open(info);
    int rc;
    do rc = sem_trywait(sem); while (rc != 0 && errno == EINTR);
    if (rc == 0) return Napi::Boolean::New(info.Env(), true);
    if (errno == EAGAIN) return Napi::Boolean::New(info.Env(), false);
    throw ErrnoError(info.Env(), errno, "sem_trywait", name_);
  }

  // wait(seconds): blocks this thread at most `seconds` (up to kMaxWaitSeconds:
  // longer waits are lib/'s loop, so no call into the addon blocks for long).
  // False on timeout.
  Napi::Value Wait(const Napi::CallbackInfo& info) {
    double seconds = NumberArg(info, 0, "seconds");
    sem_t* sem = Open(info);
    if (!(seconds >= 0 && seconds <= kMaxWaitSeconds)) {
      throw Napi::RangeError::New(info.Env(), "seconds must be between 0 and " + std::to_string(kMaxWaitSeconds));
    }
    timespec deadline = RealtimeAfter(seconds);
    int rc;
    do rc = sem_timedwait(sem, &deadline); while (rc != 0 && errno == EINTR);
    if (rc == 0) return Napi::Boolean::New(info.Env(), true);
    if (errno == ETIMEDOUT) return Napi::Boolean::New(info.Env(), false);
    throw ErrnoError(info.Env(), errno, "sem_timedwait", name_);
  }

  Napi::Value Post(const Napi::CallbackInfo& info) {
    if (sem_post(Open(info)) != 0) throw ErrnoError(info.Env(), errno, "sem_post", name_);
    return info.Env().Undefined();
  }

  Napi::Value GetValue(const Napi::CallbackInfo& info) {
    int value = 0;
    if (sem_getvalue(Open(info), &value) != 0) throw ErrnoError(info.Env(), errno, "sem_getvalue", name_);
    return Napi::Number::New(info.Env(), value);
  }

  // request(onToken): wants one more token; onToken(code) is called on this
  // thread with 0 for each token (return true to keep it) or -errno.
  Napi::Value Request(const Napi::CallbackInfo& info) {
    Open(info);
    Napi::Env env = info.Env();
    std::lock_guard<std::mutex> lock(waiting_->mutex);
    if (waiting_->tsfn == nullptr) {
      if (!info[0].IsFunction()) throw Napi::TypeError::New(env, "argument 0 (onToken) must be a function");
      auto* keep = new std::shared_ptr<Waiting>(waiting_);
      napi_status status = napi_create_threadsafe_function(
          env, info[0], nullptr, Napi::String::New(env, "pmp:NamedSemaphore"), 0, 1, keep, TsfnFinalized,
          nullptr, CallJs, &waiting_->tsfn);
      if (status != napi_ok) {
        delete keep;
        NAPI_THROW_IF_FAILED(env, status, Napi::Value());
      }
      napi_unref_threadsafe_function(env, waiting_->tsfn);
    }
    if (!waiting_->Busy()) napi_ref_threadsafe_function(env, waiting_->tsfn);
    waiting_->demand++;
    if (!waiting_->threadRunning) {
      waiting_->threadRunning = true;
      std::thread(WaitForTokens, waiting_).detach();
    } else {
      waiting_->wake.notify_one();
    }
    return env.Undefined();
  }

  // cancel(): wants one token less. False if the thread already took it: that
  // token is on its way to onToken.
  Napi::Value Cancel(const Napi::CallbackInfo& info) {
    Open(info);
    std::lock_guard<std::mutex> lock(waiting_->mutex);
    if (waiting_->demand == 0) return Napi::Boolean::New(info.Env(), false);
    waiting_->demand--;
    if (!waiting_->Busy()) napi_unref_threadsafe_function(info.Env(), waiting_->tsfn);
    return Napi::Boolean::New(info.Env(), true);
  }

  // words(): an ArrayBuffer over the first 8 bytes of the sem_t, for lib/'s
  // atomic fast path where lib/ has checked the C library's layout (glibc:
  // the value, then the number of sleepers). Valid until close().
  Napi::Value Words(const Napi::CallbackInfo& info) {
    napi_value buffer;
    if (napi_create_external_arraybuffer(info.Env(), Open(info), 8, nullptr, nullptr, &buffer) != napi_ok) {
      return info.Env().Undefined();  // a runtime without external buffers: no fast path
    }
    return Napi::Value(info.Env(), buffer);
  }

  // wakeOne(): wakes one sleeper of the value word, after lib/ raised the value itself.
  Napi::Value WakeOne(const Napi::CallbackInfo& info) {
    if (syscall(SYS_futex, reinterpret_cast<uint32_t*>(Open(info)), FUTEX_WAKE, 1, nullptr, nullptr, 0) < 0) {
      throw ErrnoError(info.Env(), errno, "futex", name_);
    }
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Stop();
    return info.Env().Undefined();
  }

  static Napi::Value Unlink(const Napi::CallbackInfo& info) {
    std::string name = StringArg(info, 0, "name");
    if (name.empty() || name[0] != '/') throw ErrnoError(info.Env(), EINVAL, "sem_unlink", name);
    if (sem_unlink(name.c_str()) != 0) throw ErrnoError(info.Env(), errno, "sem_unlink", name);
    return info.Env().Undefined();
  }

  // Stops the waiter thread and lets go of the semaphore; it is closed when
  // the thread and the tokens in flight have let go of it too.
  void Stop() {
    if (!waiting_) return;
    {
      std::lock_guard<std::mutex> lock(waiting_->mutex);
      waiting_->stopping = true;
      waiting_->demand = 0;
      if (waiting_->tsfn != nullptr) {
        napi_release_threadsafe_function(waiting_->tsfn, napi_tsfn_abort);
        waiting_->tsfn = nullptr;
      }
    }
    waiting_->wake.notify_all();
    waiting_.reset();
  }

  // A Worker being terminated: its waiter thread must stop.
  static void OnEnvCleanup(void* data) {
    auto* self = static_cast<Semaphore*>(data);
    self->Stop();
    self->env_ = nullptr;
  }

  std::string name_;
  std::shared_ptr<Waiting> waiting_;
  napi_env env_ = nullptr;
};

}  // namespace

void InitSemaphore(Napi::Env env, Napi::Object exports) {
  exports.Set("Semaphore", Semaphore::Define(env));
}
