// dragonx.hpp - the one header users include: every public dragonx API.
#pragma once

#include <dragonx/channels/channel.hpp>
#include <dragonx/common/deadline.hpp>
#include <dragonx/common/error.hpp>
#include <dragonx/common/identity.hpp>
#include <dragonx/pool/pool.hpp>
