"""The Microsoft Graph connector: token provider, throttling-aware HTTP client, enumeration,
delta readers, content download and the writers restore needs.

Written against docs of the real Graph; nothing here may depend on emulator-only behaviour.
"""
