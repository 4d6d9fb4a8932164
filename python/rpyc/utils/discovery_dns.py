"""Service discovery over DNS SRV records: :class:`DNSSRVRegistryClient`
(docs/scaling.md#dns-srv).

Kubernetes publishes a headless service's endpoints as ``_<port-name>._tcp.<service>.
<namespace>.svc.<zone>`` SRV records, Consul as ``<service>.service.consul``; any DNS server
can publish them by hand. Each SRV record names a target host, a port, a priority (lower is
tried first) and a weight (the share of connections among records of one priority,
RFC 2782). This registrar is read-only: the DNS server, not the RPyC servers, owns the
records, so servers do not register through it.

Resolution uses dnspython (the optional extra ``dns`` of this package): DNS answers are peer
input, and a well-kept parser is the safer choice than a home-made one.
"""

import logging
import random
import socket
from typing import Any, List, Optional, Sequence, Tuple

from rpyc.utils.registry import Address, RegistryClient, RegistryError

__all__ = ["DNSSRVRegistryClient", "srv_order"]

_MISSING_DNSPYTHON = (
    "DNSSRVRegistryClient needs dnspython, which is not installed: "
    "`pip install dnspython` (or, from this checkout, `pip install '.[dns]'`)"
)


def _dns() -> Any:
    try:
        import dns.exception
        import dns.rdatatype
        import dns.resolver
    except ImportError:
        raise ImportError(_MISSING_DNSPYTHON) from None
    return dns


def srv_order(records: Sequence[Tuple[int, int, Any]], rng: Any = random) -> List[Any]:
    """RFC 2782's order for ``(priority, weight, item)`` records: by priority, lowest first;
    within one priority a weighted random draw without replacement (records of weight 0
    come after the weighted ones of their priority, in random order)."""
    ordered: List[Any] = []
    for priority in sorted({r[0] for r in records}):
        group = [r for r in records if r[0] == priority]
        while group:
            total = sum(r[1] for r in group)
            if total == 0:
                pick = rng.randrange(len(group))
            else:
                point = rng.uniform(0, total)
                running = 0
                pick = len(group) - 1
                for i, r in enumerate(group):
                    running += r[1]
                    if r[1] and running >= point:
                        pick = i
                        break
            ordered.append(group.pop(pick)[2])
    return ordered


class DNSSRVRegistryClient(RegistryClient):
    """Registrar that resolves a service name to the servers of its SRV records.

    The name asked for becomes ``_<name>._tcp.<domain>`` (lower case); a name that starts
    with ``_`` is taken as the full record name. ``domain`` is the zone (e.g.
    ``"myrpc.default.svc.cluster.local"``); ``None`` leaves the name relative (the system's
    search domains apply). ``nameservers`` are the DNS servers' addresses (default: the
    system's, from ``/etc/resolv.conf``) and ``port`` their port. ``timeout`` bounds one
    resolution. ``proto`` is the SRV protocol label.

    :meth:`discover` returns the addresses in RFC 2782 order (priority, then a weighted
    random draw); :func:`rpyc.connect_by_service` keeps that order (``ordered = True``).
    Each target is resolved to its addresses through the same DNS servers (the additional
    section of the answer first), so a target only that DNS server knows still works.
    """

    #: the order of :meth:`discover` is meaningful: connect_by_service keeps it
    ordered = True

    def __init__(self, domain: Optional[str] = None, nameservers: Optional[Sequence[str]] = None,
                 port: int = 53, timeout: float = 2, proto: str = "tcp",
                 logger: Optional[logging.Logger] = None) -> None:
        dns = _dns()
        super().__init__(ip=nameservers[0] if nameservers else "", port=port, timeout=timeout, logger=logger)
        self.domain = domain.strip(".") if domain else None
        self.proto = proto
        resolver = dns.resolver.Resolver(configure=not nameservers)
        if nameservers:
            resolver.nameservers = list(nameservers)
        resolver.port = port
        resolver.lifetime = timeout
        resolver.timeout = timeout
        self.resolver = resolver

    def _get_logger(self) -> logging.Logger:
        return logging.getLogger("REGCLNT/DNS")

    def record_name(self, name: str) -> str:
        """The SRV record name asked for service ``name``."""
        name = str(name)
        if not name.startswith("_"):
            name = f"_{name.lower()}._{self.proto}"
            if self.domain:
                name = f"{name}.{self.domain}"
        return name

    def _query(self, qname: str, rdtype: str) -> Any:
        """The answer, or ``None`` when the name or the record type does not exist."""
        dns = _dns()
        try:
            return self.resolver.resolve(qname, rdtype, search=self.domain is None)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        except dns.exception.Timeout:
            raise RegistryError(
                f"no answer from the DNS server(s) {self.resolver.nameservers} port {self.resolver.port} "
                f"for {qname} {rdtype} within {self.timeout}s: is the DNS server running there?") from None
        except dns.exception.DNSException as exc:
            raise RegistryError(f"DNS lookup of {qname} {rdtype} failed: {exc}") from None

    def _addresses_of(self, target: str, answer: Any) -> List[str]:
        dns = _dns()
        found: List[str] = []
        # The additional section often carries the targets' addresses already.
        for rrset in getattr(answer.response, "additional", ()):
            if rrset.name.to_text().rstrip(".").lower() == target.lower() and \
                    rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                found.extend(rdata.address for rdata in rrset)
        if found:
            return found
        for rdtype in ("A", "AAAA"):
            addrs = self._query(target + ".", rdtype)
            if addrs is not None:
                found.extend(rdata.address for rdata in addrs)
        if not found:
            # Not in this DNS server: maybe in /etc/hosts or the system's resolver.
            try:
                found = sorted({str(ai[4][0]) for ai in socket.getaddrinfo(target, None, 0, socket.SOCK_STREAM)})
            except OSError:
                self.logger.warning("SRV target %s has no address", target)
        return found

    def discover(self, name: str) -> Tuple[Address, ...]:
        qname = self.record_name(name)
        answer = self._query(qname, "SRV")
        if answer is None:
            self.logger.debug("no SRV records for %s", qname)
            return ()
        records = []
        for rdata in answer:
            target = rdata.target.to_text().rstrip(".")
            if not target:
                continue  # "." : the service is decidedly not available there (RFC 2782)
            records.append((int(rdata.priority), int(rdata.weight), (target, int(rdata.port))))
        addrs: List[Address] = []
        for target, port in srv_order(records):
            for host in self._addresses_of(target, answer):
                if (host, port) not in addrs:
                    addrs.append((host, port))
        return tuple(addrs)

    def list(self, filter_host: Optional[str] = None) -> Any:
        raise RegistryError("DNS cannot list services: ask for one by name (rpyc.discover)")

    def register(self, aliases: Any, port: int, interface: str = "") -> bool:
        raise RegistryError(
            "servers cannot register through DNS SRV: the DNS server owns the records (a Kubernetes "
            "headless service, Consul, or your zone file); start the server with auto_register=False")

    def unregister(self, port: int) -> None:
        """Nothing to withdraw (servers never register through DNS)."""
