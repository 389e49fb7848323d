// working_set_test.cpp - the checkpoint rules of spec/ddict.md §6 on one manager's shard.
#include <catch2/catch.hpp>

#include "working_set.hpp"
