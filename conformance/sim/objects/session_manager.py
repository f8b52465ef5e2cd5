"""SessionManager: Login/Logout, session cookies, and who is calling."""

from __future__ import annotations

import datetime
import hmac
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from pyVmomi import vim

from conformance.sim.registry import ManagedObjectImpl, ObjectRegistry, current_session, soap_method


@dataclass
class Session:
    key: str
    cookie: str
    user_name: str
    login_time: datetime.datetime = field(default_factory=lambda: datetime.datetime.now(datetime.UTC))

    def user_session(self) -> Any:
        return vim.UserSession(
            key=self.key,
            userName=self.user_name,
            fullName=self.user_name,
            loginTime=self.login_time,
            lastActiveTime=datetime.datetime.now(datetime.UTC),
            locale="en",
            messageLocale="en",
            extensionSession=False,
            ipAddress="127.0.0.1",
            userAgent="pyvmomi",
            callCount=0,
        )


class SessionManagerImpl(ManagedObjectImpl):
    vim_type = vim.SessionManager
    id_prefix = "SessionManager"

    def __init__(self, registry: ObjectRegistry, user: str, password: str) -> None:
        super().__init__(registry, "SessionManager")
        self._user = user
        self._password = password
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._local = threading.local()

    # --- used by the HTTP layer ---

    def session_for_cookie(self, cookie: str | None) -> Session | None:
        if not cookie:
            return None
        with self._lock:
            return self._sessions.get(cookie)

    def cookie_to_set(self) -> str | None:
        """The cookie a Login on this thread created (sent once as Set-Cookie)."""
        cookie: str | None = getattr(self._local, "new_cookie", None)
        self._local.new_cookie = None
        return cookie

    def active_sessions(self) -> list[Session]:
        with self._lock:
            return list(self._sessions.values())

    # --- SOAP ---

    def prop_currentSession(self) -> Any:
        session = current_session.get()
        return session.user_session() if session else None

    def prop_sessionList(self) -> list[Any]:
        return [s.user_session() for s in self.active_sessions()]

    def prop_message(self) -> str:
        return ""

    def prop_defaultLocale(self) -> str:
        return "en"

    def prop_supportedLocaleList(self) -> list[str]:
        return ["en"]

    @soap_method("Login")
    def login(self, userName: str, password: str, locale: str | None = None) -> Any:
        user_ok = hmac.compare_digest(userName.encode(), self._user.encode())
        password_ok = hmac.compare_digest(password.encode(), self._password.encode())
        if not (user_ok and password_ok):
            raise vim.fault.InvalidLogin(msg="Cannot complete login due to an incorrect user name or password.")
        session = Session(key=str(uuid.uuid4()), cookie=secrets.token_hex(20), user_name=userName)
        with self._lock:
            self._sessions[session.cookie] = session
        self._local.new_cookie = session.cookie
        current_session.set(session)
        return session.user_session()

    @soap_method("Logout")
    def logout(self) -> None:
        session = current_session.get()
        if session is not None:
            with self._lock:
                self._sessions.pop(session.cookie, None)

    @soap_method("SessionIsActive")
    def session_is_active(self, sessionID: str, userName: str) -> bool:
        return any(s.key == sessionID and s.user_name == userName for s in self.active_sessions())

    @soap_method("TerminateSession")
    def terminate(self, sessionId: list[str]) -> None:
        with self._lock:
            for cookie, session in list(self._sessions.items()):
                if session.key in sessionId:
                    del self._sessions[cookie]
