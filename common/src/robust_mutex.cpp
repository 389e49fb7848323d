// robust_mutex.cpp - robust, process-shared pthread mutexes with a short spin.
#include <dragonx/common/robust_mutex.hpp>

#include <algorithm>
#include <cerrno>
#include <system_error>

#include <dragonx/common/error.hpp>
#include <dragonx/common/wait.hpp>

namespace dragonx {

void init_robust_mutex(pthread_mutex_t* m)
{
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    const int rc = pthread_mutex_init(m, &attr);
    pthread_mutexattr_destroy(&attr);
    if (rc != 0) {
        throw error(std::error_code(rc, std::system_category()), "pthread_mutex_init");
    }
}

void robust_lock::acquire_slow(int rc, const std::function<void()>* on_owner_died)
{
    // About 1,000 pauses in all, backing off exponentially, then sleep in the kernel.
    for (int spin = 0; spin < 16 && rc == EBUSY; ++spin) {
        for (int i = 0; i < (8 << std::min(spin, 3)); ++i) {
            cpu_relax();
        }
        rc = pthread_mutex_trylock(m_);
    }
    if (rc == EBUSY) {
        rc = pthread_mutex_lock(m_);
    }
    if (rc == EOWNERDEAD) {
        if (on_owner_died != nullptr && *on_owner_died) {
            (*on_owner_died)();
        }
        pthread_mutex_consistent(m_);
        rc = 0;
    }
    if (rc != 0) {
        throw error(std::error_code(rc, std::system_category()), "robust mutex lock");
    }
}

}  // namespace dragonx
