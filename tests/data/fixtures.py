"""Unified rows covering what the converters must carry: parallel calls, tool errors, empty and non-ASCII content,
system prompts and thoughts."""

TOOLS = [{"name": "get_weather", "description": "Weather of a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
         {"name": "convert", "description": "Convert a temperature",
          "parameters": {"type": "object", "properties": {"celsius": {"type": "number"}}}}]

PARALLEL = {
    "unique_trajectory_id": "weather-1",
    "task_instruction": "You are a helpful assistant. Réponds en français si on te parle français.",
    "tools": TOOLS,
    "conversation": [
        {"role": "user", "content": "Quel temps fait-il à Zürich et à 東京 ?"},
        {"role": "assistant", "content": "I will look both cities up.",
         "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Zürich"}}},
                        {"function": {"name": "get_weather", "arguments": {"city": "東京"}}}]},
        {"role": "tool", "content": "Zürich: 4°C, neige"},
        {"role": "tool", "content": "Error: city '東京' not found; use a Latin spelling"},
        {"role": "assistant", "content": "",
         "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}}]},
        {"role": "tool", "content": ""},
        {"role": "assistant", "content": "Zürich : 4 °C avec neige ; Tokyo : pas de données.", "thought": "Tokyo returned nothing."},
    ],
}

PLAIN = {
    "unique_trajectory_id": "chat-2",
    "task_instruction": "",
    "tools": [],
    "conversation": [
        {"role": "user", "content": ""},
        {"role": "assistant", "content": "Hello! 👋"},
        {"role": "user", "content": "What is 6*7?"},
        {"role": "assistant", "content": "42", "thought": "6*7=42"},
    ],
}

ROWS = [PARALLEL, PLAIN]
