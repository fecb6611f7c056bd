// `lloco` entry point: dispatches to the registered subcommands and prints help.
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "apps/command.h"

namespace lloco::apps {
std::map<std::string, Command>& command_registry() {
  static std::map<std::string, Command> registry;
  return registry;
}
}  // namespace lloco::apps

static void print_help() {
  std::printf("lloco: LLoCO (Learning Long Contexts Offline) in C++/CUDA\n\n");
  std::printf("usage: lloco <command> [options]   (lloco <command> --help for details)\n\ncommands:\n");
  for (const auto& [name, cmd] : lloco::apps::command_registry())
    std::printf("  %-12s %s\n", name.c_str(), cmd.summary.c_str());
}

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h" ||
      std::string(argv[1]) == "help") {
    print_help();
    return argc < 2 ? 1 : 0;
  }
  auto& registry = lloco::apps::command_registry();
  auto it = registry.find(argv[1]);
  if (it == registry.end()) {
    std::fprintf(stderr, "lloco: unknown command '%s'\n\n", argv[1]);
    print_help();
    return 2;
  }
  std::vector<std::string> args(argv + 2, argv + argc);
  try {
    return it->second.run(args);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lloco %s: error: %s\n", argv[1], e.what());
    return 1;
  }
}
