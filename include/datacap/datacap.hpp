// Umbrella header: the whole public API of datacap.
#pragma once

#include "datacap/archive.hpp"
#include "datacap/cap.hpp"
#include "datacap/codec.hpp"
#include "datacap/error.hpp"
#include "datacap/hash.hpp"
#include "datacap/image.hpp"
#include "datacap/merkle.hpp"
#include "datacap/page.hpp"
#include "datacap/proof.hpp"
#include "datacap/redis_store.hpp"
#include "datacap/slab.hpp"
#include "datacap/store.hpp"
#include "datacap/types.hpp"
#include "datacap/version.hpp"
#include "datacap/window.hpp"
