#include "peft/version.h"

namespace peft {
const char* version() { return "0.1.0"; }
}  // namespace peft
