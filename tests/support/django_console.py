"""A real Django admin console for tests/consoles.rs: Django's own admin
site and sign-in view, its CSRF protection and sessions, on a SQLite file,
with one superuser. Settings as docs/consoles.md tells a Django console
behind netwarden to have them.

    python django_console.py DIR PORT

DIR holds the database; PORT is the loopback port to serve on. Prints
"ready" once the database is made and the server is about to listen.
"""

import sys

import django
from django.conf import settings

DIR, PORT = sys.argv[1], int(sys.argv[2])

settings.configure(
    DEBUG=False,
    SECRET_KEY="a-test-only-secret-key-of-enough-length-0123456789",
    ALLOWED_HOSTS=["console.test", "127.0.0.1"],
    # Behind netwarden: the scheme from its X-Forwarded-Proto (it writes
    # the one the client used, never the client's own header).
    SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
    INSTALLED_APPS=[
        "django.contrib.admin",
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "django.contrib.messages",
    ],
    MIDDLEWARE=[
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
    ],
    ROOT_URLCONF=__name__,
    DATABASES={
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": f"{DIR}/db.sqlite3"}
    },
    TEMPLATES=[
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "APP_DIRS": True,
            "OPTIONS": {
                "context_processors": [
                    "django.template.context_processors.request",
                    "django.contrib.auth.context_processors.auth",
                    "django.contrib.messages.context_processors.messages",
                ]
            },
        }
    ],
    USE_TZ=True,
)
django.setup()

from django.contrib import admin  # noqa: E402
from django.urls import path  # noqa: E402

urlpatterns = [path("admin/", admin.site.urls)]

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402

call_command("migrate", verbosity=0, interactive=False)
User.objects.create_superuser("yamada", "yamada@example.jp", "right-password")
User.objects.create_superuser("suzuki", "suzuki@example.jp", "other-password")
print("ready", flush=True)
call_command("runserver", f"127.0.0.1:{PORT}", use_reloader=False, use_threading=True, verbosity=0)
