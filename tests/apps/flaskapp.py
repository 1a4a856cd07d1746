"""A small Flask app: JSON, query arguments, a form POST, Flask's own 404."""
from flask import Flask, jsonify, request

app = Flask(__name__)


@app.route("/")
def index():
    return "flask index"


@app.route("/json")
def json_route():
    return jsonify(items=[1, 2, 3], name="ferricorn")


@app.route("/greet")
def greet():
    return "Hello, %s (%s)" % (request.args.get("name", "nobody"),
                               ",".join(request.args.getlist("tag")))


@app.route("/form", methods=["POST"])
def form():
    return jsonify(dict(request.form))
