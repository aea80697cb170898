"""What litellm knows about model-id prefixes, as data: the checker never imports litellm.

Generated from litellm 1.110.2 by ``python tests/check/test_model_ids.py``;
``tests/check/test_model_ids.py`` fails when the installed litellm differs.
"""

LITELLM_VERSION = "1.110.2"

#: the prefixes litellm routes ``PROVIDER/NAME`` by (``litellm.provider_list`` and the
#: providers of its JSON registry)
PROVIDERS = frozenset({
    "a2a", "a2a_agent", "abliteration", "ai21", "ai21_chat", "aiand", "aihubmix", "aiml",
    "aiohttp_openai", "amazon_nova", "anthropic", "anthropic_text", "apertis", "assemblyai",
    "auto_router", "aws_polly", "aws_textract", "azure", "azure_ai", "azure_speech", "azure_text",
    "baseten", "bedrock", "bedrock_mantle", "bespoke", "bigmodel", "black_forest_labs", "bytez",
    "cerebras", "charity_engine", "chatgpt", "chutes", "clarifai", "clf_ai_gateway", "cloudflare",
    "codestral", "cognition", "cohere", "cohere_chat", "cometapi", "compactifai", "coralbricks",
    "cortecs", "crusoe", "cursor", "custom", "custom_openai", "darkbloom", "dashscope",
    "databricks", "databricks_agent", "datarobot", "deepgram", "deepinfra", "deepseek",
    "docker_model_runner", "dotprompt", "edenai", "elevenlabs", "empiriolabs", "empower", "eu_jev",
    "fal_ai", "featherless_ai", "fireworks_ai", "friendliai", "galadriel", "gdc", "gemini",
    "gigachat", "github", "github_copilot", "gmi", "gradient_ai", "groq", "helicone", "heroku",
    "hosted_vllm", "hostinger_router", "huggingface", "humanloop", "hyperbolic", "inception",
    "inferenceapis", "infinity", "jina_ai", "kyma", "lambda_ai", "langflow", "langfuse",
    "langgraph", "laya", "lemonade", "libertai", "litellm_agent", "litellm_proxy", "llamafile",
    "llamagate", "lm_studio", "manus", "maritalk", "meta", "meta_llama", "microsoft_365_copilot",
    "milvus", "minimax", "mistral", "modelscope", "mongodb", "moonshot", "morph", "nace", "nadir",
    "nano-gpt", "nebius", "neosantara", "nlp_cloud", "novita", "nscale", "nvidia_nim",
    "nvidia_riva", "oci", "ollama", "ollama_chat", "oobabooga", "openai", "openai_like",
    "opencode_go", "openinfer", "openrouter", "opensearch", "ovhcloud", "parallel_ai", "parasail",
    "perplexity", "petals", "pg_vector", "pinstripes", "poe", "predibase", "prism", "publicai",
    "qwen_ai_platform", "qwencloud", "ragflow", "recraft", "reducto", "refuseless", "reka",
    "replicate", "runwayml", "s3_vectors", "sagemaker", "sagemaker_chat", "sagemaker_nova", "sail",
    "sambanova", "sap", "sarvam", "scaledown", "scaleway", "scx-ai", "snowflake", "soniox",
    "stability", "strands_decider", "streamlake", "synthetic", "tencent", "tensormesh",
    "text-completion-codestral", "text-completion-inception", "text-completion-openai",
    "together_ai", "topaz", "transcribe", "triton", "typesafe", "v0", "valkey", "veniceai",
    "vercel_ai_gateway", "vertex_ai", "vertex_ai_beta", "vllm", "volcengine", "voyage", "wally",
    "wandb", "watsonx", "watsonx_text", "xai", "xiaomi_mimo", "xinference", "zai", "zerogpu",
})

#: names litellm knows whole although the part before the first slash is no provider
SLASHED_MODELS = frozenset({
    "1024-x-1024/50-steps/bedrock/amazon.nova-canvas-v1:0",
    "1024-x-1024/50-steps/stability.stable-diffusion-xl-v1", "1024-x-1024/gpt-image-1.5",
    "1024-x-1024/gpt-image-1.5-2025-12-16",
    "1024-x-1024/max-steps/stability.stable-diffusion-xl-v1", "1024-x-1536/gpt-image-1.5",
    "1024-x-1536/gpt-image-1.5-2025-12-16", "1536-x-1024/gpt-image-1.5",
    "1536-x-1024/gpt-image-1.5-2025-12-16", "512-x-512/50-steps/stability.stable-diffusion-xl-v0",
    "512-x-512/max-steps/stability.stable-diffusion-xl-v0", "high/1024-x-1024/gpt-image-1",
    "high/1024-x-1024/gpt-image-1.5", "high/1024-x-1024/gpt-image-1.5-2025-12-16",
    "high/1024-x-1536/gpt-image-1", "high/1024-x-1536/gpt-image-1.5",
    "high/1024-x-1536/gpt-image-1.5-2025-12-16", "high/1536-x-1024/gpt-image-1",
    "high/1536-x-1024/gpt-image-1.5", "high/1536-x-1024/gpt-image-1.5-2025-12-16",
    "low/1024-x-1024/gpt-image-1", "low/1024-x-1024/gpt-image-1-mini",
    "low/1024-x-1024/gpt-image-1.5", "low/1024-x-1024/gpt-image-1.5-2025-12-16",
    "low/1024-x-1536/gpt-image-1", "low/1024-x-1536/gpt-image-1-mini",
    "low/1024-x-1536/gpt-image-1.5", "low/1024-x-1536/gpt-image-1.5-2025-12-16",
    "low/1536-x-1024/gpt-image-1", "low/1536-x-1024/gpt-image-1-mini",
    "low/1536-x-1024/gpt-image-1.5", "low/1536-x-1024/gpt-image-1.5-2025-12-16",
    "max-x-max/50-steps/stability.stable-diffusion-xl-v0",
    "max-x-max/max-steps/stability.stable-diffusion-xl-v0", "medium/1024-x-1024/gpt-image-1",
    "medium/1024-x-1024/gpt-image-1-mini", "medium/1024-x-1024/gpt-image-1.5",
    "medium/1024-x-1024/gpt-image-1.5-2025-12-16", "medium/1024-x-1536/gpt-image-1",
    "medium/1024-x-1536/gpt-image-1-mini", "medium/1024-x-1536/gpt-image-1.5",
    "medium/1024-x-1536/gpt-image-1.5-2025-12-16", "medium/1536-x-1024/gpt-image-1",
    "medium/1536-x-1024/gpt-image-1-mini", "medium/1536-x-1024/gpt-image-1.5",
    "medium/1536-x-1024/gpt-image-1.5-2025-12-16", "petals-team/StableBeluga2",
    "standard/1024-x-1024/gpt-image-1.5", "standard/1024-x-1024/gpt-image-1.5-2025-12-16",
    "standard/1024-x-1536/gpt-image-1.5", "standard/1024-x-1536/gpt-image-1.5-2025-12-16",
    "standard/1536-x-1024/gpt-image-1.5", "standard/1536-x-1024/gpt-image-1.5-2025-12-16",
})

#: ``owner/model:version`` ids longer than this go to Replicate
REPLICATE_ID_LENGTH = 64
