// Child processes: what lib/process.ts needs beyond node:child_process.
// libuv reaps children, so nothing here reaps: a pidfd to wait on, a child's
// status read with WNOWAIT, a blocking poll over many descriptors for
// Python's synchronous join() and pool waits, and the calls a child makes on
// itself (close-on-exec, parent-death signal).
#include "addon.h"
#include "errors.h"
#include <cerrno>
#include <cmath>
#include <ctime>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace {

// pidfdOpen(pid): a descriptor that becomes readable when the process ends.
Napi::Value PidfdOpen(const Napi::CallbackInfo& info) {
  auto pid = static_cast<pid_t>(IntegerArg(info, 0, "pid"));
  long fd = syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0) throw ErrnoError(info.Env(), errno, "pidfd_open");
  return Napi::Number::New(info.Env(), static_cast<double>(fd));
}

// exitStatus(pid): null while the child runs, else its exit code (-signal
// when a signal ended it); undefined once libuv has reaped it (ECHILD).
// Leaves the child waitable for libuv.
Napi::Value ExitStatus(const Napi::CallbackInfo& info) {
  auto pid = static_cast<pid_t>(IntegerArg(info, 0, "pid"));
  siginfo_t status{};
  int rc;
  do rc = waitid(P_PID, static_cast<id_t>(pid), &status, WEXITED | WNOHANG | WNOWAIT);
  while (rc < 0 && errno == EINTR);
  if (rc < 0 && errno == ECHILD) return info.Env().Undefined();
  if (rc < 0) throw ErrnoError(info.Env(), errno, "waitid");
  if (status.si_pid == 0) return info.Env().Null();
  int code = status.si_code == CLD_EXITED ? status.si_status : -status.si_status;
  return Napi::Number::New(info.Env(), code);
}

// poll(fds, events, seconds): blocks until a descriptor is ready or the time
// is up (Infinity: no limit). events and the result per descriptor:
// 1 readable, 2 writable; the result adds 4 for hang-up or error.
Napi::Value Poll(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray() || !info[1].IsArray()) throw Napi::TypeError::New(env, "fds and events must be arrays");
  auto fds = info[0].As<Napi::Array>();
  auto events = info[1].As<Napi::Array>();
  double seconds = NumberArg(info, 2, "seconds");
  std::vector<pollfd> polled(fds.Length());
  for (uint32_t i = 0; i < fds.Length(); i++) {
    int mask = events.Get(i).ToNumber().Int32Value();
    polled[i].fd = fds.Get(i).ToNumber().Int32Value();
    polled[i].events = static_cast<short>(((mask & 1) ? POLLIN : 0) | ((mask & 2) ? POLLOUT : 0));
  }
  timespec deadline{};
  bool forever = !std::isfinite(seconds);
  if (!forever) {
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    double whole = std::floor(std::max(0.0, seconds));
    deadline.tv_sec += static_cast<time_t>(whole);
    deadline.tv_nsec += static_cast<long>((std::max(0.0, seconds) - whole) * 1e9);
    if (deadline.tv_nsec >= 1000000000L) {
      deadline.tv_sec++;
      deadline.tv_nsec -= 1000000000L;
    }
  }
  int rc;
  for (;;) {
    timespec left{};
    if (!forever) {
      timespec now{};
      clock_gettime(CLOCK_MONOTONIC, &now);
      left.tv_sec = deadline.tv_sec - now.tv_sec;
      left.tv_nsec = deadline.tv_nsec - now.tv_nsec;
      if (left.tv_nsec < 0) {
        left.tv_sec--;
        left.tv_nsec += 1000000000L;
      }
      if (left.tv_sec < 0) left = timespec{};
    }
    rc = ppoll(polled.data(), polled.size(), forever ? nullptr : &left, nullptr);
    if (rc >= 0 || errno != EINTR) break;
  }
  if (rc < 0) throw ErrnoError(env, errno, "ppoll");
  auto result = Napi::Array::New(env, polled.size());
  for (uint32_t i = 0; i < polled.size(); i++) {
    short r = polled[i].revents;
    int mask = ((r & POLLIN) ? 1 : 0) | ((r & POLLOUT) ? 2 : 0) | ((r & (POLLHUP | POLLERR | POLLNVAL)) ? 4 : 0);
    result.Set(i, Napi::Number::New(env, mask));
  }
  return result;
}

// setCloexec(fd): a descriptor this process inherited is not passed on to
// its own children unless they are given it explicitly.
Napi::Value SetCloexec(const Napi::CallbackInfo& info) {
  int fd = static_cast<int>(IntegerArg(info, 0, "fd"));
  int flags = fcntl(fd, F_GETFD);
  if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) throw ErrnoError(info.Env(), errno, "fcntl");
  return info.Env().Undefined();
}

// setParentDeathSignal(signal): the kernel sends it to this process when the
// thread that spawned it ends (daemonic children die with their parent).
Napi::Value SetParentDeathSignal(const Napi::CallbackInfo& info) {
  int signal = static_cast<int>(IntegerArg(info, 0, "signal"));
  if (prctl(PR_SET_PDEATHSIG, signal) < 0) throw ErrnoError(info.Env(), errno, "prctl");
  return info.Env().Undefined();
}

}  // namespace

void InitProcess(Napi::Env env, Napi::Object exports) {
  exports.Set("pidfdOpen", Napi::Function::New<PidfdOpen>(env, "pidfdOpen"));
  exports.Set("exitStatus", Napi::Function::New<ExitStatus>(env, "exitStatus"));
  exports.Set("poll", Napi::Function::New<Poll>(env, "poll"));
  exports.Set("setCloexec", Napi::Function::New<SetCloexec>(env, "setCloexec"));
  exports.Set("setParentDeathSignal", Napi::Function::New<SetParentDeathSignal>(env, "setParentDeathSignal"));
}
