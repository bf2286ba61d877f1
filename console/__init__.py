"""EM Console core: domain, protocol, store, sync and the reference simulator. Qt-free."""
