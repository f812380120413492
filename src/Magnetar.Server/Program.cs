using Magnetar.Server;

return await MagnetarHost.RunAsync(args);
