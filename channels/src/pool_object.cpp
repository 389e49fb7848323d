// pool_object.cpp - locating and borrowing the pool block of a channel or sync object.
#include "pool_object.hpp"

#include <dragonx/common/error.hpp>
#include <dragonx/common/identity.hpp>

namespace dragonx::channels::detail {

object_home locate_object(const std::string& block_descriptor, const std::string& name)
{
    object_home home;
    home.pool_descriptor = pool::pool_of(block_descriptor);
    const auto where = pool::describe(home.pool_descriptor);
    const auto me = run_identity::from_environment();
    if (me.in_run && where.run != me.run) {
        throw_error(errc::wrong_run,
                    name + " belongs to run " + where.run + ", this process to run " + me.run);
    }
    home.node = where.node;
    home.local = !me.in_run || where.node == me.node;
    return home;
}

borrowed_block borrow_block(const object_home& home, const std::string& block_descriptor,
                            const std::string& name)
{
    borrowed_block b;
    b.pool = pool::pool::attach(home.pool_descriptor);
    pool::allocation block;
    try {
        block = b.pool.attach_allocation(block_descriptor);
    } catch (const dragonx::error& e) {
        if (!e.is(errc::invalid_allocation)) {
            throw;
        }
        throw_error(errc::not_found, name + " was destroyed");
    }
    b.data = block.data();
    b.size = block.size();
    block.disown();  // borrowed: the creating handle owns it
    return b;
}

}  // namespace dragonx::channels::detail
