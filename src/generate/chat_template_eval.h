#pragma once
// Renders a parsed chat template. Scoping follows jinja2: `for` bodies get a fresh scope per
// iteration (assignments there never leak out, hence namespace()), `if` shares its enclosing scope,
// macros run in a scope below the one they were defined in.
#include <string>

#include "generate/chat_template_ast.h"
#include "generate/chat_template_value.h"

namespace peft::jinja {

// Throws RenderError (with `pos` set to the construct at fault).
std::string render_template(const Template& tmpl, const DictData& variables);

}  // namespace peft::jinja
