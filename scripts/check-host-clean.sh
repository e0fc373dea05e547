#!/usr/bin/env bash
# Fails if berth state leaked into this (the host's) network namespace.
set -u
leaks=""
l=$(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^(berth|bth)' || true)
[ -n "$l" ] && leaks+=" links: $l"
n=$(ip netns list 2>/dev/null | grep -E 'berth|bth' || true)
[ -n "$n" ] && leaks+=" namespaces: $n"
t=$(nft list tables 2>/dev/null | grep -i berth || true)
[ -n "$t" ] && leaks+=" nft tables: $t"
if [ -n "$leaks" ]; then echo "berth state leaked into the host namespace:$leaks" >&2; exit 1; fi
echo "host namespace clean: no berth links, namespaces or nft tables"
