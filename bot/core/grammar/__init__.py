"""The command grammar: how commands are written (spec), refused credentials, help, the parser."""
