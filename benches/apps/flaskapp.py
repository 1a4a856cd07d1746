"""A small Flask app: routing, a URL parameter, a JSON response."""

from flask import Flask, jsonify

app = Flask(__name__)


@app.route("/")
def index():
    return "Hello from Flask!"


@app.route("/user/<name>")
def user(name):
    return jsonify(name=name, greeting=f"Hello, {name}!", items=[1, 2, 3])
