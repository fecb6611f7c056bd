// Subcommand registry of the `lloco` executable. Each apps/cmd_*.cpp registers itself with
// LLOCO_COMMAND(name, summary, fn); main.cpp dispatches on argv[1]. argv parsing lives only in apps/.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace lloco::apps {

// Receives the arguments after the subcommand name; returns the process exit code.
using CommandFn = std::function<int(const std::vector<std::string>& args)>;

struct Command {
  std::string summary;
  CommandFn run;
};

std::map<std::string, Command>& command_registry();

struct CommandRegistrar {
  CommandRegistrar(const std::string& name, const std::string& summary, CommandFn fn) {
    command_registry()[name] = Command{summary, std::move(fn)};
  }
};

}  // namespace lloco::apps

#define LLOCO_COMMAND_CONCAT2(a, b) a##b
#define LLOCO_COMMAND_CONCAT(a, b) LLOCO_COMMAND_CONCAT2(a, b)
#define LLOCO_COMMAND(name, summary, fn) \
  static ::lloco::apps::CommandRegistrar LLOCO_COMMAND_CONCAT(lloco_command_, __LINE__)(name, summary, fn)
