"""What the tests share: the reference app, raw peers of every transport, SDK sessions, processes started as users
start them, span helpers and the shims between mcp generations. Test modules import from here, never from each
other."""
