// POSIX message queues, thin: mq_open, mq_close, mq_unlink, mq_getattr, and
// send/receive that either try once or wait in the kernel. Descriptors are
// blocking, so a send or receive that waits without limit is one system call
// that the kernel completes directly (a receiver hands a blocked sender's
// message over, a sender a waiting receiver's); trying once passes a
// deadline already past, and a limited wait polls in between tries.
// Waiting on the event loop instead is lib/'s business, with FdPoller. Each
// environment (the main thread, each Worker) knows the descriptors it
// opened: only those are accepted, and its cleanup hook closes those still
// open when the environment ends.
#include "addon.h"
#include "errors.h"
#include <cerrno>
#include <climits>
#include <algorithm>
#include <cmath>
#include <ctime>
#include <fcntl.h>
#include <mqueue.h>
#include <poll.h>
#include <unordered_set>

namespace {

struct QueueEnv {
  std::unordered_set<int> descriptors;
};

QueueEnv& EnvOf(const Napi::CallbackInfo& info) {
  return *static_cast<QueueEnv*>(info.Data());
}

// A descriptor this environment opened with mqOpen and has not closed.
mqd_t DescriptorArg(const Napi::CallbackInfo& info, size_t i, const char* syscall) {
  int64_t fd = IntegerArg(info, i, "descriptor");
  if (fd < 0 || fd > INT_MAX || EnvOf(info).descriptors.count(static_cast<int>(fd)) == 0)
    throw ErrnoError(info.Env(), EBADF, syscall);
  return static_cast<mqd_t>(fd);
}

// Seconds to wait: 0 (or negative) tries once, Infinity waits forever.
double TimeoutArg(const Napi::CallbackInfo& info, size_t i) {
  if (info[i].IsUndefined()) return 0;
  double seconds = NumberArg(info, i, "timeout");
  if (std::isnan(seconds)) throw Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " (timeout) must not be NaN");
  return seconds > 0 ? seconds : 0;
}

double Now() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) / 1e9;
}

// A deadline long past: a blocking descriptor's timed call then only tries.
const timespec kPast = {0, 0};

// Runs call(until) until it succeeds (>= 0), fails for another reason than a
// timeout (throws), or `timeout` seconds passed (-1). Without a limit the
// call itself waits in the kernel (until = null): one system call. With one,
// it only tries (until = kPast) and poll(2) waits for `events` in between, on
// the monotonic clock (the kernel's own deadlines are CLOCK_REALTIME, which
// setting the wall clock moves).
template <typename Call>
ssize_t Timed(Napi::Env env, mqd_t fd, const char* syscall, short events, double timeout, Call call) {
  bool forever = !std::isfinite(timeout);
  double deadline = forever ? 0 : Now() + timeout;
  for (;;) {
    ssize_t rc = call(forever ? nullptr : &kPast);
    if (rc >= 0) return rc;
    if (errno == EINTR) continue;
    if (errno != ETIMEDOUT && errno != EAGAIN) throw ErrnoError(env, errno, syscall);
    if (forever) {
      // EAGAIN: libuv's uv_poll_init (an FdPoller for the async calls) made
      // the descriptor non-blocking; they only try, so it can block again.
      mq_attr blocking = {};
      if (mq_setattr(fd, &blocking, nullptr) != 0) throw ErrnoError(env, errno, "mq_setattr");
      continue;
    }
    double left = deadline - Now();
    if (timeout == 0 || left <= 0) return -1;
    pollfd watched = {fd, events, 0};
    int milliseconds = static_cast<int>(std::min(std::ceil(left * 1000), static_cast<double>(INT_MAX)));
    if (poll(&watched, 1, milliseconds) < 0 && errno != EINTR) throw ErrnoError(env, errno, "poll");
  }
}

// mqOpen(name, flags, mode, maxMessages, maxMessageSize) -> descriptor.
// flags: the O_* constants of mqConstants. maxMessages and maxMessageSize
// are used only when creating; 0 for both lets the kernel choose.
Napi::Value Open(const Napi::CallbackInfo& info) {
  std::string name = StringArg(info, 0, "name");
  int64_t flags = IntegerArg(info, 1, "flags");
  int64_t mode = IntegerArg(info, 2, "mode");
  int64_t maxMessages = IntegerArg(info, 3, "maxMessages");
  int64_t maxMessageSize = IntegerArg(info, 4, "maxMessageSize");
  const int64_t allowed = O_RDONLY | O_WRONLY | O_RDWR | O_CREAT | O_EXCL;
  if (flags < 0 || (flags & ~allowed) != 0) throw Napi::RangeError::New(info.Env(), "flags must combine O_RDONLY, O_WRONLY, O_RDWR, O_CREAT and O_EXCL");
  if (mode < 0 || mode > 07777) throw Napi::RangeError::New(info.Env(), "mode must be between 0 and 0o7777");
  if (maxMessages < 0 || maxMessages > LONG_MAX || maxMessageSize < 0 || maxMessageSize > LONG_MAX)
    throw Napi::RangeError::New(info.Env(), "maxMessages and maxMessageSize must not be negative");
  mq_attr attr = {};
  attr.mq_maxmsg = static_cast<long>(maxMessages);
  attr.mq_msgsize = static_cast<long>(maxMessageSize);
  bool withAttr = maxMessages != 0 || maxMessageSize != 0;
  mqd_t fd = mq_open(name.c_str(), static_cast<int>(flags) | O_CLOEXEC, static_cast<mode_t>(mode),
                     withAttr ? &attr : nullptr);
  if (fd == static_cast<mqd_t>(-1)) throw ErrnoError(info.Env(), errno, "mq_open", name);
  EnvOf(info).descriptors.insert(fd);
  return Napi::Number::New(info.Env(), fd);
}

// mqClose(descriptor)
Napi::Value Close(const Napi::CallbackInfo& info) {
  mqd_t fd = DescriptorArg(info, 0, "mq_close");
  EnvOf(info).descriptors.erase(fd);
  if (mq_close(fd) != 0) throw ErrnoError(info.Env(), errno, "mq_close");
  return info.Env().Undefined();
}

// mqUnlink(name)
Napi::Value Unlink(const Napi::CallbackInfo& info) {
  std::string name = StringArg(info, 0, "name");
  if (mq_unlink(name.c_str()) != 0) throw ErrnoError(info.Env(), errno, "mq_unlink", name);
  return info.Env().Undefined();
}

// mqGetattr(descriptor) -> { maxMessages, maxMessageSize, currentMessages }
Napi::Value Getattr(const Napi::CallbackInfo& info) {
  mqd_t fd = DescriptorArg(info, 0, "mq_getattr");
  mq_attr attr;
  if (mq_getattr(fd, &attr) != 0) throw ErrnoError(info.Env(), errno, "mq_getattr");
  Napi::Object result = Napi::Object::New(info.Env());
  result.Set("maxMessages", Napi::Number::New(info.Env(), static_cast<double>(attr.mq_maxmsg)));
  result.Set("maxMessageSize", Napi::Number::New(info.Env(), static_cast<double>(attr.mq_msgsize)));
  result.Set("currentMessages", Napi::Number::New(info.Env(), static_cast<double>(attr.mq_curmsgs)));
  return result;
}

// mqSend(descriptor, bytes, priority, timeout = 0) -> true when sent, false
// when the queue stayed full for `timeout` seconds (0: tried once).
Napi::Value Send(const Napi::CallbackInfo& info) {
  mqd_t fd = DescriptorArg(info, 0, "mq_send");
  Bytes bytes = BytesArg(info, 1, "bytes");
  int64_t priority = IntegerArg(info, 2, "priority");
  if (priority < 0 || priority >= MQ_PRIO_MAX) throw Napi::RangeError::New(info.Env(), "priority must be between 0 and " + std::to_string(MQ_PRIO_MAX - 1));
  double timeout = TimeoutArg(info, 3);
  const char* data = bytes.data ? reinterpret_cast<const char*>(bytes.data) : "";
  ssize_t rc = Timed(info.Env(), fd, "mq_send", POLLOUT, timeout, [&](const timespec* until) {
    return static_cast<ssize_t>(mq_timedsend(fd, data, bytes.length, static_cast<unsigned>(priority), until));
  });
  return Napi::Boolean::New(info.Env(), rc == 0);
}

// mqReceive(descriptor, buffer, timeout = 0, priority?: Uint32Array) -> the
// message's length, its bytes at the start of `buffer` (which must hold
// maxMessageSize bytes) and its priority in priority[0]; -1 when the queue
// stayed empty for `timeout` seconds (0: tried once).
Napi::Value Receive(const Napi::CallbackInfo& info) {
  mqd_t fd = DescriptorArg(info, 0, "mq_receive");
  Bytes buffer = BytesArg(info, 1, "buffer");
  double timeout = TimeoutArg(info, 2);
  uint32_t* priorityOut = nullptr;
  if (!info[3].IsUndefined()) {
    napi_typedarray_type type;
    size_t length = 0;
    void* out = nullptr;
    if (!info[3].IsTypedArray() ||
        napi_get_typedarray_info(info.Env(), info[3], &type, &length, &out, nullptr, nullptr) != napi_ok ||
        type != napi_uint32_array || length < 1)
      throw Napi::TypeError::New(info.Env(), "argument 3 (priority) must be a Uint32Array of at least one element");
    priorityOut = static_cast<uint32_t*>(out);
  }
  char empty = 0;
  char* data = buffer.data ? reinterpret_cast<char*>(buffer.data) : &empty;
  unsigned priority = 0;
  ssize_t length = Timed(info.Env(), fd, "mq_receive", POLLIN, timeout, [&](const timespec* until) {
    return mq_timedreceive(fd, data, buffer.length, &priority, until);
  });
  if (length >= 0 && priorityOut != nullptr) *priorityOut = priority;
  return Napi::Number::New(info.Env(), static_cast<double>(length));
}

}  // namespace

void InitMessageQueue(Napi::Env env, Napi::Object exports) {
  auto* state = new QueueEnv();
  env.AddCleanupHook([state]() {
    for (int fd : state->descriptors) mq_close(fd);
    delete state;
  });
  exports.Set("mqOpen", Napi::Function::New(env, Open, "mqOpen", state));
  exports.Set("mqClose", Napi::Function::New(env, Close, "mqClose", state));
  exports.Set("mqUnlink", Napi::Function::New(env, Unlink, "mqUnlink", state));
  exports.Set("mqGetattr", Napi::Function::New(env, Getattr, "mqGetattr", state));
  exports.Set("mqSend", Napi::Function::New(env, Send, "mqSend", state));
  exports.Set("mqReceive", Napi::Function::New(env, Receive, "mqReceive", state));
  Napi::Object constants = Napi::Object::New(env);
  constants.Set("O_RDONLY", O_RDONLY);
  constants.Set("O_WRONLY", O_WRONLY);
  constants.Set("O_RDWR", O_RDWR);
  constants.Set("O_CREAT", O_CREAT);
  constants.Set("O_EXCL", O_EXCL);
  constants.Set("MQ_PRIO_MAX", MQ_PRIO_MAX);
  exports.Set("mqConstants", constants);
}
