"""Django's own ASGI handler (get_asgi_application()) for
tests/test_asgi_frameworks.py; settings are configured here and the URLconf
is this module, so no project is needed. `channels_app` wraps the same views
in a Channels ProtocolTypeRouter with a websocket echo consumer and the
in-memory channel layer."""
import django
from django.conf import settings
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import path

settings.configure(
    DEBUG=False,
    SECRET_KEY="asgi-matrix-not-secret",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    INSTALLED_APPS=["channels"],
    CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}},
)
django.setup()


def index(request):
    return JsonResponse({"framework": "django"})


def echo(request):
    return HttpResponse(request.body, content_type="application/octet-stream")


async def stream(request):
    async def parts():
        for i in range(3):
            yield b"part %d\n" % i
    return StreamingHttpResponse(parts(), content_type="text/plain")


urlpatterns = [path("", index), path("echo", echo), path("stream", stream)]

from django.core.asgi import get_asgi_application  # noqa: E402

application = get_asgi_application()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402


class EchoConsumer(AsyncWebsocketConsumer):
    """Echoes text, reverses bytes; each message also goes round the channel
    layer (group_send to its own group) so the layer is exercised."""

    async def connect(self):
        await self.channel_layer.group_add("echo", self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        await self.channel_layer.group_discard("echo", self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        if text_data is not None:
            await self.channel_layer.group_send("echo", {"type": "echo.text", "text": text_data})
        else:
            await self.send(bytes_data=bytes_data[::-1])

    async def echo_text(self, event):
        await self.send(text_data="echo:" + event["text"])


channels_app = ProtocolTypeRouter({
    "http": application,
    "websocket": URLRouter([re_path(r"^ws$", EchoConsumer.as_asgi())]),
})
