// dragonx.hpp - the one header users include: every public dragonx API.
#pragma once

#include <dragonx/channels/barrier.hpp>
#include <dragonx/channels/channel.hpp>
#include <dragonx/channels/channel_set.hpp>
#include <dragonx/channels/event.hpp>
#include <dragonx/channels/queue.hpp>
#include <dragonx/channels/semaphore.hpp>
#include <dragonx/common/codec.hpp>
#include <dragonx/common/deadline.hpp>
#include <dragonx/common/error.hpp>
#include <dragonx/common/identity.hpp>
#include <dragonx/ddict/ddict.hpp>
#include <dragonx/policy/discovery.hpp>
#include <dragonx/policy/evaluator.hpp>
#include <dragonx/policy/policy.hpp>
#include <dragonx/pool/pool.hpp>
#include <dragonx/runtime/process.hpp>
#include <dragonx/runtime/process_group.hpp>
#include <dragonx/runtime/runtime.hpp>
#include <dragonx/runtime/system.hpp>
#include <dragonx/tasks/registry.hpp>
#include <dragonx/tasks/task_pool.hpp>
#include <dragonx/tasks/worker.hpp>
