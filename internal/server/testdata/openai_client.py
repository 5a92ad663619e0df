"""OpenAI's own Python client against a nextchat server (TestOpenAIPythonClient runs it).

Usage: openai_client.py BASE_URL API_KEY MODEL IMAGE_PATH
Exits non-zero, with the failed assertion, if the client cannot use the server as OpenAI's API.
"""
import base64
import sys

import openai

base_url, api_key, model, image_path = sys.argv[1:5]
client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0)
assert [m.id for m in client.models.list().data] == [model]

with open(image_path, "rb") as f:
    image = "data:image/png;base64," + base64.b64encode(f.read()).decode()
question = {"role": "user", "content": [{"type": "text", "text": "Where is the red circle?"},
                                        {"type": "image_url", "image_url": {"url": image}}]}

# An answer with a location: NExT-Chat's fields arrive as extras of the message.
r = client.chat.completions.create(model=model, messages=[question, {"role": "assistant", "content": "Answer: <at>"}],
                                   max_tokens=8, extra_body={"iou_threshold": 0})
message = r.choices[0].message
assert message.content.startswith("Answer: [0]"), message.content
assert r.usage.completion_tokens == 8 and r.choices[0].finish_reason == "length", r
locations = message.model_extra["locations"]
assert len(locations) >= 1 and "mask_rle" in locations[0] and len(locations[0]["box_pixel"]) == 4, locations

# A follow-up with that answer and its locations, streamed with usage.
follow = [question, {"role": "assistant", "content": message.content, "locations": locations},
          {"role": "user", "content": "And what colour is it?"}]
text, finish, usage = "", None, None
for chunk in client.chat.completions.create(model=model, messages=follow, max_tokens=6, stream=True,
                                            stream_options={"include_usage": True}):
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
        finish = chunk.choices[0].finish_reason or finish
    if chunk.usage:
        usage = chunk.usage
assert text and finish in ("stop", "length"), (text, finish)
assert usage.completion_tokens <= 6 and usage.prompt_tokens_details.cached_tokens > 0, usage

# Refusals are the client's own exception types.
try:
    client.chat.completions.create(model=model, messages=[{"role": "system", "content": "Be brief."},
                                                          {"role": "user", "content": "hi"}])
    raise AssertionError("a system message was accepted")
except openai.BadRequestError as e:
    assert "system messages are not supported" in str(e), e
try:
    openai.OpenAI(base_url=base_url, api_key="wrong", max_retries=0).models.list()
    raise AssertionError("a wrong API key was accepted")
except openai.AuthenticationError:
    pass
print("ok")
