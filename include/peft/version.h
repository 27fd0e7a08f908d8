#pragma once

namespace peft {
// Library version string, e.g. "0.1.0".
const char* version();
}  // namespace peft
