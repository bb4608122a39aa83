// The descriptors behind Pipe, Connection, Listener and Client: socketpair,
// pipe, reads and writes that wait with poll(2), and the synchronous socket
// calls (bind, listen, accept, connect) for AF_UNIX and AF_INET. Framing,
// authentication and every decision about waiting live in lib/connection.ts.
//
// Timeouts are milliseconds; a negative timeout waits forever. A read or
// write that finds the descriptor not ready within its timeout returns -1.
#include "addon.h"
#include "errors.h"
#include <arpa/inet.h>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <unordered_set>

namespace {

// The descriptors this environment opened (or adopted) and has not closed:
// closed by the env cleanup hook when a Worker ends or the process exits.
struct Descriptors {
  std::unordered_set<int> open;
  static Descriptors& Of(const Napi::CallbackInfo& info) { return *static_cast<Descriptors*>(info.Data()); }
  static void Cleanup(void* data) {
    auto* self = static_cast<Descriptors*>(data);
    for (int fd : self->open) close(fd);
    delete self;
  }
};

int FdArg(const Napi::CallbackInfo& info, size_t i) {
  int64_t fd = IntegerArg(info, i, "fd");
  if (fd < 0 || fd > INT32_MAX) throw Napi::RangeError::New(info.Env(), "fd must be a non-negative descriptor");
  return static_cast<int>(fd);
}

// The bytes [offset, offset + length) of a Buffer argument, checked.
struct Span { uint8_t* data; size_t length; };
Span SpanArgs(const Napi::CallbackInfo& info, size_t i) {
  Bytes bytes = BytesArg(info, i, "buffer");
  int64_t offset = IntegerArg(info, i + 1, "offset");
  int64_t length = IntegerArg(info, i + 2, "length");
  if (offset < 0 || length < 0 || static_cast<uint64_t>(offset) + static_cast<uint64_t>(length) > bytes.length)
    throw Napi::RangeError::New(info.Env(), "offset and length must lie within the buffer");
  return {bytes.data + offset, static_cast<size_t>(length)};
}

double MonotonicMs() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return now.tv_sec * 1e3 + now.tv_nsec / 1e6;
}

// poll(2) for `events` until ready or `timeout_ms` passed (negative: forever),
// restarted after signals. Returns revents, or 0 on timeout.
short PollFd(Napi::Env env, int fd, short events, double timeout_ms) {
  double deadline = timeout_ms < 0 ? INFINITY : MonotonicMs() + timeout_ms;
  for (;;) {
    int wait_ms = -1;
    if (timeout_ms >= 0) {
      double left = std::max(0.0, deadline - MonotonicMs());
      wait_ms = static_cast<int>(std::min(std::ceil(left), static_cast<double>(INT32_MAX)));
    }
    pollfd entry{fd, events, 0};
    int rc = poll(&entry, 1, wait_ms);
    if (rc > 0) {
      if (entry.revents & POLLNVAL) throw ErrnoError(env, EBADF, "poll");
      return entry.revents;
    }
    if (rc == 0) {
      if (timeout_ms < 0 || MonotonicMs() >= deadline) return 0;
      continue;
    }
    if (errno != EINTR) throw ErrnoError(env, errno, "poll");
  }
}

// wait(fd, events, timeoutMs): 1 = readable, 2 = writable. Returns the ready
// bits (hang-up and errors count as readable and writable: the next call says
// what happened), 0 on timeout.
Napi::Value Wait(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  int64_t events = IntegerArg(info, 1, "events");
  double timeout_ms = NumberArg(info, 2, "timeoutMs");
  short wanted = ((events & 1) ? POLLIN : 0) | ((events & 2) ? POLLOUT : 0);
  short revents = PollFd(info.Env(), fd, wanted, timeout_ms);
  int ready = 0;
  if (revents & (POLLIN | POLLHUP | POLLERR)) ready |= events & 1;
  if (revents & (POLLOUT | POLLHUP | POLLERR)) ready |= events & 2;
  return Napi::Number::New(info.Env(), ready);
}

// read(fd, buffer, offset, length, timeoutMs): bytes read, 0 at end of file,
// -1 if nothing arrived in time.
Napi::Value Read(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  Span span = SpanArgs(info, 1);
  double timeout_ms = NumberArg(info, 4, "timeoutMs");
  for (;;) {
    if (timeout_ms >= 0 && PollFd(info.Env(), fd, POLLIN, timeout_ms) == 0) return Napi::Number::New(info.Env(), -1);
    ssize_t n = read(fd, span.data, span.length);
    if (n >= 0) return Napi::Number::New(info.Env(), static_cast<double>(n));
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      if (timeout_ms >= 0) return Napi::Number::New(info.Env(), -1);
      PollFd(info.Env(), fd, POLLIN, -1);  // someone made the descriptor non-blocking
      continue;
    }
    throw ErrnoError(info.Env(), errno, "read");
  }
}

// Shared by write and send: wait for room (unless blocking), then one call.
template <typename Call>
Napi::Value WriteWith(const Napi::CallbackInfo& info, const char* syscall, Call call) {
  int fd = FdArg(info, 0);
  Span span = SpanArgs(info, 1);
  double timeout_ms = NumberArg(info, 4, "timeoutMs");
  for (;;) {
    if (timeout_ms >= 0 && PollFd(info.Env(), fd, POLLOUT, timeout_ms) == 0) return Napi::Number::New(info.Env(), -1);
    ssize_t n = call(fd, span, timeout_ms >= 0);
    if (n >= 0) return Napi::Number::New(info.Env(), static_cast<double>(n));
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      if (timeout_ms >= 0) return Napi::Number::New(info.Env(), -1);
      PollFd(info.Env(), fd, POLLOUT, -1);  // someone made the descriptor non-blocking
      continue;
    }
    throw ErrnoError(info.Env(), errno, syscall);
  }
}

// write(fd, buffer, offset, length, timeoutMs): bytes written (possibly fewer
// than asked), -1 if there was no room in time. For pipes; a pipe reported
// writable takes at least PIPE_BUF bytes without blocking.
Napi::Value Write(const Napi::CallbackInfo& info) {
  return WriteWith(info, "write", [](int fd, Span span, bool) { return write(fd, span.data, span.length); });
}

// send(fd, buffer, offset, length, timeoutMs): write for sockets, without
// SIGPIPE (a closed peer is EPIPE), and never blocking once the timeout is >= 0.
Napi::Value Send(const Napi::CallbackInfo& info) {
  return WriteWith(info, "send", [](int fd, Span span, bool nonblocking) {
    return send(fd, span.data, span.length, MSG_NOSIGNAL | (nonblocking ? MSG_DONTWAIT : 0));
  });
}

Napi::Value SocketPair(const Napi::CallbackInfo& info) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) throw ErrnoError(info.Env(), errno, "socketpair");
  Descriptors::Of(info).open.insert({fds[0], fds[1]});
  Napi::Array result = Napi::Array::New(info.Env(), 2);
  result.Set(0u, fds[0]);
  result.Set(1u, fds[1]);
  return result;
}

// pipe() → [readFd, writeFd]
Napi::Value Pipe(const Napi::CallbackInfo& info) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw ErrnoError(info.Env(), errno, "pipe2");
  Descriptors::Of(info).open.insert({fds[0], fds[1]});
  Napi::Array result = Napi::Array::New(info.Env(), 2);
  result.Set(0u, fds[0]);
  result.Set(1u, fds[1]);
  return result;
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  Descriptors::Of(info).open.erase(fd);
  // Linux releases the descriptor even when close reports EINTR: never retry.
  if (close(fd) != 0 && errno != EINTR) throw ErrnoError(info.Env(), errno, "close");
  return info.Env().Undefined();
}

// adopt(fd): a descriptor this environment did not open (inherited from the
// parent) is closed with the others when the environment ends.
Napi::Value Adopt(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  if (fcntl(fd, F_GETFD) < 0) throw ErrnoError(info.Env(), errno, "fcntl");
  Descriptors::Of(info).open.insert(fd);
  return info.Env().Undefined();
}

// setBlocking(fd, blocking): libuv makes a polled descriptor non-blocking;
// processes that inherit it (CPython among them) expect it blocking.
Napi::Value SetBlocking(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0) throw ErrnoError(info.Env(), errno, "fcntl");
  int wanted = info[1].ToBoolean() ? flags & ~O_NONBLOCK : flags | O_NONBLOCK;
  if (wanted != flags && fcntl(fd, F_SETFL, wanted) < 0) throw ErrnoError(info.Env(), errno, "fcntl");
  return info.Env().Undefined();
}

Napi::Value IsSocket(const Napi::CallbackInfo& info) {
  struct stat st;
  if (fstat(FdArg(info, 0), &st) != 0) throw ErrnoError(info.Env(), errno, "fstat");
  return Napi::Boolean::New(info.Env(), S_ISSOCK(st.st_mode));
}

// Addresses as lib/ writes them: a string is an AF_UNIX path (a leading NUL
// makes it abstract), [host, port] an AF_INET (or AF_INET6) address.
struct Address {
  sockaddr_storage storage{};
  socklen_t length = 0;
  std::string text;  // for error messages
};

Address ParseAddress(Napi::Env env, Napi::Value value) {
  Address address;
  if (value.IsString()) {
    std::string path = value.As<Napi::String>().Utf8Value();
    auto* un = reinterpret_cast<sockaddr_un*>(&address.storage);
    bool abstract = !path.empty() && path[0] == '\0';
    if (path.size() + (abstract ? 0 : 1) > sizeof(un->sun_path)) throw ErrnoError(env, ENAMETOOLONG, "bind", path);
    un->sun_family = AF_UNIX;
    std::memcpy(un->sun_path, path.data(), path.size());
    address.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (abstract ? 0 : 1));
    address.text = abstract ? "@" + path.substr(1) : path;
    return address;
  }
  if (value.IsArray()) {
    Napi::Array pair = value.As<Napi::Array>();
    Napi::Value host = pair.Get(0u), port = pair.Get(1u);
    if (!host.IsString() || !port.IsNumber()) throw Napi::TypeError::New(env, "an AF_INET address is [host, port]");
    std::string name = host.As<Napi::String>().Utf8Value();
    double number = port.As<Napi::Number>().DoubleValue();
    if (!(number >= 0 && number <= 65535) || std::trunc(number) != number)
      throw Napi::RangeError::New(env, "port must be 0-65535");
    addrinfo hints{};
    hints.ai_family = name.find(':') == std::string::npos ? AF_INET : AF_INET6;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    int rc = getaddrinfo(name.empty() ? nullptr : name.c_str(), std::to_string(static_cast<int>(number)).c_str(), &hints, &found);
    if (rc != 0) {
      Napi::Error error = Napi::Error::New(env, std::string("getaddrinfo ") + gai_strerror(rc) + " '" + name + "'");
      error.Set("code", rc == EAI_NONAME ? "ENOTFOUND" : "EAI_FAIL");
      error.Set("syscall", "getaddrinfo");
      error.Set("hostname", name);
      throw error;
    }
    std::memcpy(&address.storage, found->ai_addr, found->ai_addrlen);
    address.length = found->ai_addrlen;
    freeaddrinfo(found);
    address.text = name + ":" + std::to_string(static_cast<int>(number));
    return address;
  }
  throw Napi::TypeError::New(env, "an address is a socket path (string) or [host, port]");
}

Napi::Value FormatAddress(Napi::Env env, const sockaddr_storage& storage, socklen_t length) {
  if (storage.ss_family == AF_UNIX) {
    const auto* un = reinterpret_cast<const sockaddr_un*>(&storage);
    size_t size = length > offsetof(sockaddr_un, sun_path) ? length - offsetof(sockaddr_un, sun_path) : 0;
    if (size > 0 && un->sun_path[0] != '\0') size = strnlen(un->sun_path, size);
    return Napi::String::New(env, un->sun_path, size);
  }
  char host[INET6_ADDRSTRLEN] = "";
  int port = 0;
  if (storage.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&storage);
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    port = ntohs(in->sin_port);
  } else if (storage.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&storage);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    port = ntohs(in6->sin6_port);
  } else {
    return env.Null();
  }
  Napi::Array pair = Napi::Array::New(env, 2);
  pair.Set(0u, host);
  pair.Set(1u, port);
  return pair;
}

// socket(address): a stream socket of the address's family, close-on-exec.
Napi::Value Socket(const Napi::CallbackInfo& info) {
  Address address = ParseAddress(info.Env(), info[0]);
  int fd = socket(address.storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw ErrnoError(info.Env(), errno, "socket", address.text);
  Descriptors::Of(info).open.insert(fd);
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value SetReuseAddress(const Napi::CallbackInfo& info) {
  int one = 1;
  if (setsockopt(FdArg(info, 0), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
    throw ErrnoError(info.Env(), errno, "setsockopt");
  return info.Env().Undefined();
}

Napi::Value Bind(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  Address address = ParseAddress(info.Env(), info[1]);
  if (bind(fd, reinterpret_cast<sockaddr*>(&address.storage), address.length) != 0)
    throw ErrnoError(info.Env(), errno, "bind", address.text);
  return info.Env().Undefined();
}

Napi::Value Listen(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  int64_t backlog = IntegerArg(info, 1, "backlog");
  if (listen(fd, static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(backlog, INT32_MAX)))) != 0)
    throw ErrnoError(info.Env(), errno, "listen");
  return info.Env().Undefined();
}

// accept(fd, timeoutMs) → [fd, peerAddress], or null if nobody came in time.
Napi::Value Accept(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  double timeout_ms = NumberArg(info, 1, "timeoutMs");
  for (;;) {
    if (timeout_ms >= 0 && PollFd(info.Env(), fd, POLLIN, timeout_ms) == 0) return info.Env().Null();
    sockaddr_storage peer{};
    socklen_t length = sizeof peer;
    int flags = SOCK_CLOEXEC | (timeout_ms >= 0 ? SOCK_NONBLOCK : 0);
    int conn = accept4(fd, reinterpret_cast<sockaddr*>(&peer), &length, flags);
    if (conn < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN) {
        if (timeout_ms >= 0) return info.Env().Null();
        PollFd(info.Env(), fd, POLLIN, -1);  // someone made the descriptor non-blocking
        continue;
      }
      throw ErrnoError(info.Env(), errno, "accept");
    }
    // The accepted socket is blocking, as the processes it may be passed to expect.
    if (flags & SOCK_NONBLOCK) fcntl(conn, F_SETFL, fcntl(conn, F_GETFL) & ~O_NONBLOCK);
    Descriptors::Of(info).open.insert(conn);
    Napi::Array result = Napi::Array::New(info.Env(), 2);
    result.Set(0u, conn);
    result.Set(1u, FormatAddress(info.Env(), peer, length));
    return result;
  }
}

// connect(fd, address, block): with block = true waits until connected (a
// signal does not abandon it); with block = false returns false when the
// connection is still in progress (then wait for writable and call
// connectResult). Either way the socket is left blocking.
Napi::Value Connect(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  Address address = ParseAddress(info.Env(), info[1]);
  bool block = info[2].ToBoolean();
  int flags = fcntl(fd, F_GETFL);
  if (!block) fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  int rc = connect(fd, reinterpret_cast<sockaddr*>(&address.storage), address.length);
  int err = rc == 0 ? 0 : errno;
  if (!block) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  if ((err == EINTR || err == EINPROGRESS) && block) {
    // The connection goes on in the background: wait for it and read its result.
    PollFd(info.Env(), fd, POLLOUT, -1);
    socklen_t size = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &size) != 0) err = errno;
  }
  if (err == EINPROGRESS && !block) return Napi::Boolean::New(info.Env(), false);
  if (err != 0) throw ErrnoError(info.Env(), err, "connect", address.text);
  return Napi::Boolean::New(info.Env(), true);
}

// connectResult(fd, address): after a connect in progress became writable, throws its failure.
Napi::Value ConnectResult(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  int err = 0;
  socklen_t size = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &size) != 0) err = errno;
  if (err != 0) throw ErrnoError(info.Env(), err, "connect", info[1].IsString() || info[1].IsArray() ? ParseAddress(info.Env(), info[1]).text : "");
  return info.Env().Undefined();
}

Napi::Value GetSockName(const Napi::CallbackInfo& info) {
  sockaddr_storage storage{};
  socklen_t length = sizeof storage;
  if (getsockname(FdArg(info, 0), reinterpret_cast<sockaddr*>(&storage), &length) != 0)
    throw ErrnoError(info.Env(), errno, "getsockname");
  return FormatAddress(info.Env(), storage, length);
}

}  // namespace

void InitSocket(Napi::Env env, Napi::Object exports) {
  auto* descriptors = new Descriptors;
  napi_add_env_cleanup_hook(env, Descriptors::Cleanup, descriptors);
  Napi::Object socket = Napi::Object::New(env);
  auto add = [&](const char* name, Napi::Value (*fn)(const Napi::CallbackInfo&)) {
    socket.Set(name, Napi::Function::New(env, fn, name, descriptors));
  };
  add("socketpair", SocketPair);
  add("pipe", Pipe);
  add("wait", Wait);
  add("read", Read);
  add("write", Write);
  add("send", Send);
  add("close", Close);
  add("adopt", Adopt);
  add("setBlocking", SetBlocking);
  add("isSocket", IsSocket);
  add("socket", Socket);
  add("setReuseAddress", SetReuseAddress);
  add("bind", Bind);
  add("listen", Listen);
  add("accept", Accept);
  add("connect", Connect);
  add("connectResult", ConnectResult);
  add("getsockname", GetSockName);
  exports.Set("socket", socket);
}
