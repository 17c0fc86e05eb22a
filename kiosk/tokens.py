"""The kiosk's paired controllers: hashed tokens with id, name and role.

Only the sha256 of each token is stored (``state_dir/tokens.json``, mode 0600,
written atomically). The running kiosk re-reads the file when it changes (it looks
once per message and before each push, :meth:`TokenStore.refresh`), so
``classcast-kiosk tokens revoke`` takes effect at once, even on open connections.
"""

from __future__ import annotations

import datetime
import hmac
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from protocol.errors import ClassCastError
from protocol.messages import Role
from protocol.pairing import token_hash


@dataclass(frozen=True, slots=True)
class Grant:
    """One paired controller."""

    token_hash: str
    controller_id: str
    name: str
    role: Role
    paired_at: str


class TokenStore:
    """Grants on disk; every method but :meth:`is_valid` re-reads the file if another
    process changed it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._grants: list[Grant] = []
        self._stamp: tuple[int, int] | None = None
        self._load()

    def grants(self) -> list[Grant]:
        self._load()
        return list(self._grants)

    def lookup(self, token: str | None) -> Grant | None:
        """The grant of ``token``, or None if it is unknown or revoked."""
        if not token:
            return None
        self._load()
        wanted = token_hash(token)
        for grant in self._grants:
            if hmac.compare_digest(grant.token_hash, wanted):
                return grant
        return None

    def is_valid(self, grant: Grant) -> bool:
        """Whether ``grant`` is still on file (not revoked since it was looked up), as of
        the last :meth:`refresh` or other call: it does not look at the file itself.

        A running kiosk calls :meth:`refresh` once per message it handles and before each
        push, so a revocation by another process counts from the next message on, while
        a message's several checks cost one look at the file.
        """
        return grant in self._grants

    def refresh(self) -> None:
        """Re-read the file if another process changed it (one ``stat`` otherwise).

        Raises:
            ClassCastError: the file is damaged.
        """
        self._load()

    def add(
        self, token: str, controller_id: str, name: str, role: Role, now_wall_s: float
    ) -> Grant:
        """Store a new grant; an earlier grant of the same controller and role is replaced."""
        self._load()
        when = datetime.datetime.fromtimestamp(now_wall_s, datetime.UTC)
        grant = Grant(
            token_hash=token_hash(token),
            controller_id=controller_id,
            name=name,
            role=role,
            paired_at=when.isoformat(timespec="seconds").replace("+00:00", "Z"),
        )
        kept = [g for g in self._grants if (g.controller_id, g.role) != (controller_id, role)]
        self._save([*kept, grant])
        return grant

    def revoke(self, selector: str) -> list[Grant]:
        """Remove grants whose controller id, name or token-hash prefix (≥ 8) is ``selector``."""
        self._load()
        gone = [
            g
            for g in self._grants
            if selector in (g.controller_id, g.name)
            or (len(selector) >= 8 and g.token_hash.startswith(selector))
        ]
        if gone:
            self._save([g for g in self._grants if g not in gone])
        return gone

    def revoke_hash(self, hashed: str) -> None:
        self._load()
        self._save([g for g in self._grants if g.token_hash != hashed])

    def _load(self) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._grants, self._stamp = [], None
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self._grants = [Grant(**g) for g in data["grants"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ClassCastError(f"{self.path} is damaged: {exc}", code="tokens") from None
        self._stamp = stamp

    def _save(self, grants: list[Grant]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"grants": [asdict(g) for g in grants]}, f, ensure_ascii=False, indent=1)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)
        self._stamp = None
        self._load()
