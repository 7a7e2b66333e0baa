// A standalone MeshNet coordination server, and the admin commands that talk to it.
//
//   coordinator                  serve (settings from appsettings.json, MeshNet:* or MESHNET_* variables)
//   coordinator create-tailnet NAME
//   coordinator create-authkey --tailnet NAME [--reusable] [--ephemeral] [--tag tag:x]... [--lifetime 24h]
//   coordinator list-nodes --tailnet NAME
//
// See README.md beside this file.
using Coordinator;

if (args is ["-h" or "--help" or "help", ..])
{
    Console.WriteLine(Usage.Text);
    return 0;
}
if (args.Length > 0 && AdminCommands.IsCommand(args[0]))
{
    return await AdminCommands.RunAsync(args);
}
return await CoordinatorServer.RunAsync(args);
