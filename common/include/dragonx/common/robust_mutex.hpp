// robust_mutex.hpp - process-shared pthread mutexes that survive the death of their holder.
//
// A mutex in shared memory whose holder is killed would block everyone for ever. A robust
// mutex instead hands the lock to the next locker together with EOWNERDEAD; that locker runs
// the data structure's repair (on_owner_died) and marks the mutex consistent again.
//
// Notes:
// - robust_lock spins on trylock for a few tens of microseconds before sleeping in the
//   kernel: critical sections here are short, and a futex wake costs about as much.
// - on_owner_died runs with the lock held and must not throw.
#pragma once

#include <pthread.h>

#include <functional>

namespace dragonx {

/// Initialises `m` (in shared memory) as a process-shared robust mutex. Throws on failure.
void init_robust_mutex(pthread_mutex_t* m);

/// Holds a robust mutex for one scope.
class robust_lock {
public:
    /// Locks `m`. Throws dragonx::error if the mutex is unusable. The uncontended case is one
    /// inline trylock.
    explicit robust_lock(pthread_mutex_t* m) : m_(m)
    {
        if (const int rc = pthread_mutex_trylock(m); rc != 0) [[unlikely]] {
            acquire_slow(rc, nullptr);
        }
    }

    /// Locks `m`; if its previous holder died, runs `on_owner_died` first.
    robust_lock(pthread_mutex_t* m, const std::function<void()>& on_owner_died) : m_(m)
    {
        if (const int rc = pthread_mutex_trylock(m); rc != 0) [[unlikely]] {
            acquire_slow(rc, &on_owner_died);
        }
    }

    robust_lock(const robust_lock&) = delete;
    robust_lock& operator=(const robust_lock&) = delete;
    ~robust_lock() { pthread_mutex_unlock(m_); }

private:
    // The first trylock failed with `rc`: spin, sleep, or repair after a dead holder.
    void acquire_slow(int rc, const std::function<void()>* on_owner_died);

    pthread_mutex_t* m_;
};

}  // namespace dragonx
