"""PumpWatch shared kernel: settings, site model, readings, clock, broker, command line."""
