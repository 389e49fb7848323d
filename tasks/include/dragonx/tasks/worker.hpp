// worker.hpp - the worker side of a task_pool: serve_tasks_if_worker().
//
//   void register_tasks(dragonx::task_registry& r) { r.add("square", ...); }
//   int main(int argc, char** argv) {
//       dragonx::task_registry registry;
//       register_tasks(registry);
//       if (auto code = dragonx::serve_tasks_if_worker(registry)) return *code;
//       ... // the program itself: create task_pools, use them
//   }
//
// A task_pool starts its workers from the creator's executable (or the pool's worker_exe)
// with DRAGONX_TASK_* variables in their environment. serve_tasks_if_worker() sees them,
// runs the pool's initializer, then runs tasks until the pool stops the worker (or its creator
// is gone), and returns the exit code for main(). In any other process it returns nullopt at
// once, so the same program is both the head and its workers.
//
// Notes:
// - A task may use the whole dragonx API, including creating task_pools of its own.
// - A worker whose initializer threw keeps running, and fails every task it is given with
//   the initializer's message, so the pool reports it instead of restarting it forever.
// - The DRAGONX_TASK_* variables are removed from the worker's environment before the first
//   task runs.
#pragma once

#include <optional>

#include <dragonx/tasks/registry.hpp>

namespace dragonx {

[[nodiscard]] std::optional<int> serve_tasks_if_worker(const task_registry& registry);

}  // namespace dragonx
