"""The framework-matrix routes (see fw_common) in Django: settings are
configured here and the URLconf is this module, so no project is needed."""
import django
from django.conf import settings
from django.http import FileResponse, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import path

from fw_common import (APP_DATE, APP_SERVER, EURO_VALUE, LATIN1_VALUE, boom_message,
                       digest_stream, file_path, stream_parts, validated, with_static)

NAME = "django"

settings.configure(
    DEBUG=False,
    SECRET_KEY="fw-matrix-not-secret",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
    # With DEBUG off Django logs request errors only to mail_admins; send
    # them to stderr (the server's error log) as a deployment would.
    LOGGING={
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"stderr": {"class": "logging.StreamHandler"}},
        "loggers": {"django.request": {"handlers": ["stderr"], "level": "ERROR"}},
    },
)
django.setup()


def index(request):
    return HttpResponse("ok")


def json_echo(request):
    import json
    return JsonResponse({"framework": NAME, "echo": json.loads(request.body)})


def upload(request):
    upload = request.FILES["file"]
    size, sha = digest_stream(upload.read)
    return JsonResponse({"filename": upload.name, "size": size, "sha256": sha})


def chunked_len(request):
    # request.body stops at CONTENT_LENGTH (0 when the body is chunked);
    # with wsgi.input_terminated the input itself ends with the body.
    if "CONTENT_LENGTH" in request.META:
        size, sha = digest_stream(request.read)
    else:
        size, sha = digest_stream(request.META["wsgi.input"].read)
    return JsonResponse({"len": size, "sha256": sha})


def stream(request):
    return StreamingHttpResponse(stream_parts(), content_type="text/plain")


def file(request):
    return FileResponse(open(file_path(), "rb"), content_type="application/octet-stream")


def boom(request):
    raise RuntimeError(boom_message(NAME))


def with_headers(body, **headers):
    def view(request):
        response = HttpResponse(body)
        for name, value in headers.items():
            response[name.replace("_", "-")] = value
        return response
    return view


def secure(request):
    return JsonResponse({"secure": request.is_secure(),
                         "url_scheme": request.META["wsgi.url_scheme"]})


urlpatterns = [
    path("", index),
    path("json", json_echo),
    path("upload", upload),
    path("chunked-len", chunked_len),
    path("stream", stream),
    path("file", file),
    path("raise", boom),
    path("hdr-latin1", with_headers("latin1", X_Name=LATIN1_VALUE)),
    path("hdr-euro", with_headers("euro", X_Price=EURO_VALUE)),
    path("server-date", with_headers("server-date", Server=APP_SERVER, Date=APP_DATE)),
    path("close", with_headers("closing", Connection="close")),
    path("secure", secure),
]

from django.core.wsgi import get_wsgi_application  # noqa: E402  (after setup)

app = with_static(get_wsgi_application())
validated_app = validated(app)
