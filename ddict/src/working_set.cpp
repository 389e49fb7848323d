// working_set.cpp - see working_set.hpp.
#include "working_set.hpp"
