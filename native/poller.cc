// Readiness of a port's fd, driven by Node's own libuv loop. When the fd is readable the
// poller reads a whole batch into the shared slab and calls JS once with the count, so a
// batch costs one crossing in each direction.
#include "poller.h"

#include <poll.h>
#include <sched.h>
#include <time.h>
#include <uv.h>

#include <algorithm>
#include <vector>

#include "batch_io.h"
#include "errors.h"
#include "udp_io.h"

namespace switchyard {

class Poller;

// Adaptive busy-polling. Waking a sleeping process costs tens of microseconds on a VM, twice
// per request/response through the switch. After a batch, the switch keeps polling all of
// its fds without sleeping for a short budget, renewed whenever more frames come; idle, it
// sleeps in libuv as before, so an idle daemon costs no CPU.
//
// The budget follows the traffic: light traffic (request/response, a ping every few ms) gets a
// long one, so the next request still finds the switch awake; heavy traffic keeps the switch
// awake by itself, and a spin there only takes the core from the senders and receivers it
// serves (2 cores: iperf3 lost 20 % to a 3 ms spin and ~10 % to a 50 us one), so a lone
// switch gets none by default; a VTEP, one of two userspace hops in a row, gets 50 us (the
// daemon decides).
static std::vector<Poller*> g_active;
static int64_t g_spinNs = 0;
static int64_t g_lightSpinNs = 0;
static bool g_spinning = false;
static int64_t g_spinUntil = 0;
constexpr int64_t kRateWindowNs = 10000000;
// Below this many frames per two 10 ms windows (10 k frames/s) traffic counts as light.
constexpr int kLightFrames = 200;
static int64_t g_windowStart = 0;
static int g_windowFrames = 0;
static int g_previousFrames = 0;
static bool g_light = false;
// Set by JS (loopTurn()) when it opened a socket or started watching one: libuv registers
// those only in its poll phase, so the spin gives the loop a turn first instead of making the
// new socket wait for the end of a slice (a NAT connection takes several such steps).
static bool g_loopWanted = false;
static bool g_skipSlice = false;

// What the spinning did, for `stats` (an operator's view of whether busy-polling pays).
static struct {
  double slices, turns, readTurns, pollTurns, yields, frames;
} g_spinStats;

// The wall clock in ms (as Date.now()), written before every batch is handed to JS: the
// switch's MAC table reads it there, because Date.now() in JS boxes a new number per call.
static double* g_batchClock = nullptr;
static Napi::Reference<Napi::Float64Array> g_batchClockRef;

void StampBatchClock() {
  if (g_batchClock == nullptr) return;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  *g_batchClock = (double)((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

static int64_t NowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

// Counts `frames` just handled and returns how long to keep spinning after them.
static int64_t SpinBudget(int64_t now, int frames) {
  if (now - g_windowStart >= kRateWindowNs) {
    g_previousFrames = now - g_windowStart < 2 * kRateWindowNs ? g_windowFrames : 0;
    g_windowFrames = 0;
    g_windowStart = now;
  }
  g_windowFrames += frames;
  g_light = g_previousFrames + g_windowFrames < kLightFrames && g_lightSpinNs > g_spinNs;
  return g_light ? g_lightSpinNs : g_spinNs;
}

class Poller : public Napi::ObjectWrap<Poller> {
 public:
  static void SpinAll(Napi::Env env);
  static void ScheduleSpin();
  static bool ReadEach(Napi::Env env, bool* got, int* frames);
  static bool PollEach(Napi::Env env, std::vector<struct pollfd>& fds, std::vector<Poller*>& who, bool* got,
                       int* frames);

  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Poller",
                       {InstanceMethod("start", &Poller::Start), InstanceMethod("stop", &Poller::Stop),
                        InstanceMethod("close", &Poller::Close)});
  }

  // new Poller(fd, slab: Uint8Array, meta: Int32Array, maxFrames, frameMax, onBatch(count))
  // onBatch gets the frame count, or a negative errno when the fd failed (port gone).
  explicit Poller(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Poller>(info) {
    Napi::Env env = info.Env();
    fd_ = info[0].As<Napi::Number>().Int32Value();
    Napi::Uint8Array slab = info[1].As<Napi::Uint8Array>();
    Napi::Int32Array meta = info[2].As<Napi::Int32Array>();
    maxFrames_ = info[3].As<Napi::Number>().Int32Value();
    frameMax_ = info[4].As<Napi::Number>().Uint32Value();
    slabRef_ = Napi::Persistent(slab);
    metaRef_ = Napi::Persistent(meta);
    slab_ = slab.Data();
    slabLen_ = slab.ByteLength();
    meta_ = meta.Data();
    if ((size_t)maxFrames_ * 2 > meta.ElementLength()) maxFrames_ = (int)(meta.ElementLength() / 2);
    callback_ = Napi::Persistent(info[5].As<Napi::Function>());
    // Datagram mode (the overlay's UDP socket): recvmmsg with sender addresses, each datagram
    // at the start of a frameMax slot after `headroom` bytes.
    if (info.Length() > 7 && info[6].IsTypedArray()) {
      Napi::Uint32Array srcs = info[6].As<Napi::Uint32Array>();
      srcsRef_ = Napi::Persistent(srcs);
      srcs_ = srcs.Data();
      // meta/srcs may hold more frames than messages are read (trains split into datagrams).
      frameCap_ = (int)std::min(meta.ElementLength() / 2, (size_t)srcs.ElementLength());
      headroom_ = info[7].As<Napi::Number>().Uint32Value();
    }
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    handle_ = new uv_poll_t;
    int r = uv_poll_init(loop, handle_, fd_);
    if (r < 0) {
      delete handle_;
      handle_ = nullptr;
      ErrnoError(env, -r, "uv_poll_init").ThrowAsJavaScriptException();
      return;
    }
    handle_->data = this;
  }

  ~Poller() override { CloseHandle(); }

 private:
  static void OnPoll(uv_poll_t* h, int status, int events) {
    Poller* self = static_cast<Poller*>(h->data);
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    int n;
    if (status < 0) {
      n = status;  // libuv errors are negative errno values already
    } else {
      n = self->Read();
      if (n == 0) return;
    }
    self->Deliver(env, n);
    if (n > 0 && (g_spinNs > 0 || g_lightSpinNs > 0) && !env.IsExceptionPending()) {
      int64_t now = NowNs();
      int64_t until = now + SpinBudget(now, n);
      if (until > g_spinUntil) g_spinUntil = until;
      if (!g_spinning) {
        g_skipSlice = g_loopWanted;
        g_loopWanted = false;
        ScheduleSpin();
      }
    }
  }

  // Reads and delivers one batch of at most `limit` frames (0: a whole batch); returns the
  // count (or -errno after delivering it).
  int Read(int limit = 0) {
    int max = limit > 0 && limit < maxFrames_ ? limit : maxFrames_;
    if (srcs_) return ReadDatagrams(fd_, slab_, slabLen_, meta_, srcs_, max, frameCap_, frameMax_, headroom_);
    return ReadFrames(fd_, slab_, slabLen_, 0, meta_, max, frameMax_);
  }

  int Pump(Napi::Env env, int limit) {
    Napi::HandleScope scope(env);
    int n = Read(limit);
    if (n == 0) return 0;
    return Deliver(env, n);
  }

  // Hands JS `n` frames already in the slab (meta filled), or -errno (the fd failed: it is
  // taken off the loop, as a failed fd would spin it; JS decides what comes next).
  int Deliver(Napi::Env env, int n) {
    if (n < 0) Deactivate();
    StampBatchClock();
    callback_.MakeCallback(env.Global(), {Napi::Number::New(env, n)});
    return n;
  }

  // A read ReadOneEach did into slab[off..]: its length, -EAGAIN or -errno.
  int DeliverRead(Napi::Env env, size_t off, int32_t r) {
    if (r == -EAGAIN) return 0;
    Napi::HandleScope scope(env);
    if (r < 0) return Deliver(env, r);
    meta_[0] = (int32_t)off;
    meta_[1] = r;
    return Deliver(env, 1);
  }

  void Activate() {
    if (std::find(g_active.begin(), g_active.end(), this) == g_active.end()) g_active.push_back(this);
  }

  void Deactivate() {
    if (handle_) uv_poll_stop(handle_);
    g_active.erase(std::remove(g_active.begin(), g_active.end(), this), g_active.end());
  }

  Napi::Value Start(const Napi::CallbackInfo& info) {
    if (!handle_) return ThrowErrno(info.Env(), EBADF, "uv_poll_start");
    int r = uv_poll_start(handle_, UV_READABLE, OnPoll);
    if (r < 0) return ThrowErrno(info.Env(), -r, "uv_poll_start");
    Activate();
    return info.Env().Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    Deactivate();
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    CloseHandle();
    return info.Env().Undefined();
  }

  void CloseHandle() {
    if (!handle_) return;
    Deactivate();
    ClosePollHandle(handle_);
  }

  int fd_ = -1;
  uint8_t* slab_ = nullptr;
  size_t slabLen_ = 0;
  int32_t* meta_ = nullptr;
  int maxFrames_ = 0;
  size_t frameMax_ = 0;
  uv_poll_t* handle_ = nullptr;
  Napi::Reference<Napi::Uint8Array> slabRef_;
  Napi::Reference<Napi::Int32Array> metaRef_;
  Napi::Reference<Napi::Uint32Array> srcsRef_;
  uint32_t* srcs_ = nullptr;
  size_t headroom_ = 0;
  int frameCap_ = 0;
  Napi::FunctionReference callback_;
};

// Spins until the budget runs out, in slices run from a check handle, i.e. right after each
// poll phase: libuv's I/O (and the sockets JS just opened, which libuv registers only in its
// poll phase) gets its turn before every slice. An idle handle makes that poll phase not
// sleep while the budget lasts.
static uv_idle_t* g_idle = nullptr;
static uv_check_t* g_check = nullptr;
static napi_env g_env = nullptr;
// libuv's own epoll fd: readable while any of its handles (host sockets of NAT, the API, the
// store) has an event. A slice ends early for those, instead of making them wait up to 1 ms
// per step (a NAT connection takes several such steps).
static int g_backendFd = -1;
constexpr int64_t kSliceNs = 1000000;

static void OnIdle(uv_idle_t*) {}

static void OnCheck(uv_check_t*) {
  if (g_skipSlice) {
    g_skipSlice = false;
    return;  // the idle handle keeps the next poll phase from sleeping
  }
  Napi::Env env(g_env);
  Napi::HandleScope scope(env);
  Poller::SpinAll(env);
}

void Poller::ScheduleSpin() {
  if (!g_idle) return;
  uv_idle_start(g_idle, OnIdle);
  uv_check_start(g_check, OnCheck);
}

// Light traffic with up to this many ports: one io_uring_enter tries a read on each port
// (RWF_NOWAIT: an empty queue says EAGAIN at once) instead of a poll() and then a read(), two
// system calls of 1-1.6 us each per frame that a ping waits for, four times per round trip.
// Every kPollEvery-th turn is a poll() as under heavy traffic, which also sees libuv's fd.
constexpr size_t kReadEachMax = 16;
constexpr unsigned kPollEvery = 16;
// While traffic is light, a sched_yield() on every empty turn would make the next frame wait
// for it too; once per this long still hands the core to a thread that wants it.
constexpr int64_t kLightYieldNs = 50000;

// One turn of reads on every port (see kReadEachMax). Ports may share a slab (every TAP
// does), so each read gets its own place in its slab, as a batch would. Returns false when
// it could not run (too many ports, a datagram port, a slab too small, no io_uring): the
// caller polls instead.
bool Poller::ReadEach(Napi::Env env, bool* got, int* frames) {
  const size_t count = g_active.size();
  if (count > kReadEachMax) return false;
  int fds[kReadEachMax] = {};
  uint8_t* bufs[kReadEachMax] = {};
  size_t lens[kReadEachMax] = {};
  size_t offs[kReadEachMax] = {};
  int32_t res[kReadEachMax] = {};
  Poller* who[kReadEachMax] = {};
  for (size_t i = 0; i < count; i++) {
    Poller* p = g_active[i];
    if (p->srcs_) return false;  // datagram mode: recvmmsg with sender addresses
    // After the reads earlier in this turn that went into the same slab.
    size_t off = 0;
    for (size_t j = 0; j < i; j++) {
      if (who[j]->slab_ == p->slab_) off = offs[j] + lens[j];
    }
    if (off + p->frameMax_ > p->slabLen_) return false;
    fds[i] = p->fd_;
    bufs[i] = p->slab_ + off;
    lens[i] = p->frameMax_;
    offs[i] = off;
    who[i] = p;
  }
  if (!ReadOneEach(fds, bufs, lens, (int)count, res)) return false;
  for (size_t i = 0; i < count; i++) {
    // A callback may have closed a later poller (port removed): only deliver to live ones.
    if (res[i] == -EAGAIN || std::find(g_active.begin(), g_active.end(), who[i]) == g_active.end()) continue;
    int n = who[i]->DeliverRead(env, offs[i], res[i]);
    if (n != 0) *got = true;
    if (n > 0) *frames += n;
    if (env.IsExceptionPending()) return true;
  }
  return true;
}

// One turn of poll() on every port and on libuv's fd, then a batch from each ready port.
// Returns false when libuv has an event of its own to run first.
bool Poller::PollEach(Napi::Env env, std::vector<struct pollfd>& fds, std::vector<Poller*>& who, bool* got,
                      int* frames) {
  fds.clear();
  who.clear();
  for (Poller* p : g_active) {
    fds.push_back({p->fd_, POLLIN, 0});
    who.push_back(p);
  }
  const size_t ours = fds.size();
  if (g_backendFd >= 0) fds.push_back({g_backendFd, POLLIN, 0});
  int r = poll(fds.data(), fds.size(), 0);
  if (r <= 0) return true;
  bool oursReady = false;
  for (size_t i = 0; i < ours; i++) {
    if (fds[i].revents) oursReady = true;
  }
  // libuv has an event that is not one of our ports (they are in its epoll set too): let the
  // loop run it now; the idle handle brings it back here right after.
  if (!oursReady && fds.size() > ours && fds[ours].revents & POLLIN) return false;
  for (size_t i = 0; i < ours; i++) {
    if (!(fds[i].revents & (POLLIN | POLLERR | POLLHUP))) continue;
    if (std::find(g_active.begin(), g_active.end(), who[i]) == g_active.end()) continue;
    // Light traffic comes a frame at a time: reading one per readiness saves the read that
    // would only say EAGAIN (a syscall, ~1 us here); the next poll() sees any more.
    int n = who[i]->Pump(env, g_light ? 1 : 0);
    if (n != 0) *got = true;
    if (n > 0) *frames += n;
    if (env.IsExceptionPending()) return true;
  }
  return true;
}

void Poller::SpinAll(Napi::Env env) {
  if (g_spinning) return;
  g_spinning = true;
  int64_t now = NowNs();
  const int64_t sliceEnd = now + kSliceNs;
  int64_t lastYield = now;
  std::vector<struct pollfd> fds;
  std::vector<Poller*> who;
  g_spinStats.slices++;
  for (unsigned turn = 1; now < g_spinUntil && now < sliceEnd && !g_active.empty(); turn++) {
    bool got = false;
    int frames = 0;
    g_spinStats.turns++;
    bool readEach = g_light && turn % kPollEvery != 0 && ReadEach(env, &got, &frames);
    if (readEach) g_spinStats.readTurns++;
    else g_spinStats.pollTurns++;
    if (!readEach && !PollEach(env, fds, who, &got, &frames)) break;
    g_spinStats.frames += frames;
    if (env.IsExceptionPending()) {
      g_spinning = false;
      return;
    }
    now = NowNs();
    if (got) {
      g_spinUntil = now + SpinBudget(now, frames);
    } else if (!g_light || now - lastYield >= kLightYieldNs) {
      // Nothing ready: let a runnable thread (the sandboxes' own work, on 2 cores) have the
      // CPU without giving up our place the way a sleep would.
      sched_yield();
      g_spinStats.yields++;
      lastYield = now = NowNs();
    }
    // JS opened a socket: go to the poll phase now (the idle handle brings the loop back).
    if (g_loopWanted) {
      g_loopWanted = false;
      break;
    }
  }
  g_spinning = false;
  if (!g_idle) return;
  if (now < g_spinUntil) {
    ScheduleSpin();
  } else {
    uv_idle_stop(g_idle);
    uv_check_stop(g_check);
  }
}

// setBusyPoll(microseconds[, lightMicroseconds]): the budget after a batch of heavy traffic,
// and while traffic is light (default: the same); both 0 turns busy-polling off.
static Napi::Value SetBusyPoll(const Napi::CallbackInfo& info) {
  double us = info[0].As<Napi::Number>().DoubleValue();
  double light = info.Length() > 1 ? info[1].As<Napi::Number>().DoubleValue() : us;
  g_spinNs = us > 0 ? (int64_t)(us * 1000) : 0;
  g_lightSpinNs = light > 0 ? (int64_t)(light * 1000) : 0;
  if (!g_idle) {
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(info.Env(), &loop);
    g_env = info.Env();
    g_idle = new uv_idle_t;
    uv_idle_init(loop, g_idle);
    g_check = new uv_check_t;
    uv_check_init(loop, g_check);
    g_backendFd = uv_backend_fd(loop);
    // Spinning never keeps the process alive.
    uv_unref(reinterpret_cast<uv_handle_t*>(g_idle));
    uv_unref(reinterpret_cast<uv_handle_t*>(g_check));
  }
  return info.Env().Undefined();
}

// loopTurn(): the caller opened a socket or started watching one; see g_loopWanted.
static Napi::Value LoopTurn(const Napi::CallbackInfo& info) {
  g_loopWanted = true;
  return info.Env().Undefined();
}

// busyPollStats() -> { slices, turns, readTurns, pollTurns, yields, frames } since start.
static Napi::Value BusyPollStats(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("slices", g_spinStats.slices);
  o.Set("turns", g_spinStats.turns);
  o.Set("readTurns", g_spinStats.readTurns);
  o.Set("pollTurns", g_spinStats.pollTurns);
  o.Set("yields", g_spinStats.yields);
  o.Set("frames", g_spinStats.frames);
  return o;
}

// setBatchClock(cell: Float64Array): where pollers write the time before each batch.
static Napi::Value SetBatchClock(const Napi::CallbackInfo& info) {
  Napi::Float64Array cell = info[0].As<Napi::Float64Array>();
  if (cell.ElementLength() < 1) {
    Napi::RangeError::New(info.Env(), "setBatchClock: the cell must hold one number").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  g_batchClockRef = Napi::Persistent(cell);
  g_batchClockRef.SuppressDestruct();
  g_batchClock = cell.Data();
  StampBatchClock();
  return info.Env().Undefined();
}

void InitPoller(Napi::Env env, Napi::Object exports) {
  exports.Set("setBatchClock", Napi::Function::New(env, SetBatchClock));
  exports.Set("busyPollStats", Napi::Function::New(env, BusyPollStats));
  exports.Set("Poller", Poller::Init(env));
  exports.Set("loopTurn", Napi::Function::New(env, LoopTurn));
  exports.Set("setBusyPoll", Napi::Function::New(env, SetBusyPoll));
}

}  // namespace switchyard
