#include <iostream>
#include "peft/version.h"
int main() { std::cout << peft::version() << "\n"; }
