//! nftables over netlink (being ported).
