"""A one-view Django project answering with what Django makes of the
request's scheme: `request.is_secure()` and `build_absolute_uri()` read
`wsgi.url_scheme` when SECURE_PROXY_SSL_HEADER is not set."""
import json

from django.conf import settings

settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    SECRET_KEY="test-only",
    MIDDLEWARE=[],
)

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402


def scheme(request):
    answer = {"secure": request.is_secure(), "uri": request.build_absolute_uri()}
    return HttpResponse(json.dumps(answer), content_type="application/json")


urlpatterns = [path("", scheme), path("s", scheme)]

application = get_wsgi_application()
